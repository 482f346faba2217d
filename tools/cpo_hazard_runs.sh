#!/usr/bin/env bash
# CPO against TRPO on saferl_PointHazard-v0 (docs/BENCHMARKS.md): the `hazard`
# preset (limit 2 per 100-step episode, 2,000 samples per update), 60k steps,
# seeds 0-2, two runs at a time. Resumable: run it again.
# Usage: tools/cpo_hazard_runs.sh [OUTPUT_DIR]   (default runs/cpo_hazard)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/cpo_hazard}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
for seed in 0 1 2; do
  for agent in cpo trpo; do
    # Evaluations with the mean action, as the table in docs/BENCHMARKS.md was measured.
    "$python" -m saferl_tf.cli.train --agent="$agent" --config=hazard --env=saferl_PointHazard-v0 \
      --config.evaluate_with_samples=false --seed="$seed" --total_steps=60000 --eval_every=5000 --eval_episodes=5 --noprogress \
      --run_dir="$out/$agent/saferl_PointHazard-v0/$seed" > "$out/$agent-$seed.log" 2>&1 &
  done
  wait
done
