"""Steps to reach a return under the cost limit (``analysis.efficiency``)."""

from __future__ import annotations

import numpy as np
import pytest
from test_plot import metric_rows, run_plot, write_config, write_jsonl

from saferl_tf.analysis import efficiency

ENV = "saferl_Test-v0"
STEPS = [1000, 2000, 3000, 4000, 5000]


def test_the_first_step_needs_both_the_return_and_the_cost_and_smoothing_applies():
    steps = np.array(STEPS, float)
    returns, costs = [0, 60, 120, 150, 160], [0, 0, 40, 10, 0]
    # 120 at 3000 has cost 40 over the limit 25: the first good step is 4000.
    assert efficiency.first_step_reaching(steps, returns, costs, 100, 25.0) == 4000
    assert efficiency.first_step_reaching(steps, returns, costs, 100, None) == 3000
    assert efficiency.first_step_reaching(steps, returns, costs, 500, 25.0) is None
    # Smoothed over 3 points: returns (30, 60, 110, 143.3, 155), costs (0, 13.3, 16.7, 16.7, 5).
    assert efficiency.first_step_reaching(steps, returns, costs, 100, 25.0, smooth=3) == 3000


@pytest.fixture
def tree(tmp_path):
    runs = {
        "fast": {"0": [0, 100, 200, 200, 200], "1": [0, 50, 150, 200, 200]},
        "slow": {"0": [0, 0, 50, 100, 200], "1": [0, 0, 0, 50, 90]},
    }
    for algo, seeds in runs.items():
        for seed, returns in seeds.items():
            folder = tmp_path / algo / ENV / seed
            write_jsonl(folder, metric_rows("eval", STEPS, returns, [0.0] * len(STEPS)))
            write_config(folder, algo, 25.0)
    return tmp_path


def test_the_table_counts_runs_that_reached_and_divides_by_the_reference(tree):
    rows = {row.algo: row for row in efficiency.steps_to_return(tree, [100, 200])}
    assert rows["fast"].steps == {100: [2000, 3000], 200: [3000, 4000]}
    assert rows["slow"].steps == {100: [4000, None], 200: [5000, None]}
    table = efficiency.steps_table(list(rows.values()), reference="fast")
    assert "| fast | 2 | 2,500 ± 500 (2/2) | 3,500 ± 500 (2/2) |" in table
    assert "| slow | 2 | 4,000 (1/2), 1.6× fast | 5,000 (1/2), 1.4× fast |" in table


def test_the_plot_tool_prints_it(python, subprocess_env, tree):
    result = run_plot(python, subprocess_env, f"--data_path={tree}", "--steps_to_return=100",
                      "--reference=fast")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "steps to return 100" in result.stdout and "1.6× fast" in result.stdout
    result = run_plot(python, subprocess_env, f"--data_path={tree}", "--steps_to_return=ten")
    assert result.returncode == 2 and "--steps_to_return takes numbers" in result.stderr
