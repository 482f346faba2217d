#!/usr/bin/env bash
# GIBO against ARS on the published GIBO code's MuJoCo searches (issue 17,
# docs/BENCHMARKS.md): gym_Swimmer-v4, a linear 8x2 policy without offset (16
# parameters), 2,000 evaluations; gym_Hopper-v4, linear 11x3 with offset and
# observation normalization (36 parameters), 8,000 evaluations. One episode
# per evaluation. Searcher settings are the published configs' (the
# paper_swimmer / paper_hopper presets in saferl_tf/search/presets.py), and so
# is the reward each searcher sees: GIBO r / 350 (Swimmer) and (r - 1) / 1000
# (Hopper), ARS raw r (Swimmer) and r - 1 (Hopper); ARS runs with observation
# normalization (V2 / V2-t) and no offset (the published runs never perturb
# it). Every 20 (Swimmer) or 80 (Hopper) evaluations the current parameters
# are measured on an episode of their own with the raw reward
# (search/iterate_return), which the figure plots.
# Resumable: run the same command again; finished runs are skipped, a killed
# one continues from its last evaluation.
# Usage: [SEEDS="0 1 2 3 4"] [TASKS="swimmer hopper"] [METHODS="gibo ars"]
#        tools/gibo_mujoco_runs.sh [RESULTS_DIR]      (default results/gibo_mujoco)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/gibo_mujoco}
python=${PYTHON:-.venv/bin/python}
for task in ${TASKS:-swimmer hopper}; do
  for seed in ${SEEDS:-0 1 2 3 4}; do
    for method in ${METHODS:-gibo ars}; do
      case "$task/$method" in
        swimmer/gibo) env=gym_Swimmer-v4 budget=2000 every=20 args="--reward_scale=0.002857142857142857" ;;
        swimmer/ars) env=gym_Swimmer-v4 budget=2000 every=20 args="--normalize" ;;
        hopper/gibo) env=gym_Hopper-v4 budget=8000 every=80 args="--bias --normalize --reward_shift=-1 --reward_scale=0.001" ;;
        hopper/ars) env=gym_Hopper-v4 budget=8000 every=80 args="--normalize --reward_shift=-1" ;;
      esac
      run_dir="$out/$method-paper_$task/$env/$seed"
      if [ -f "$run_dir/summary.json" ]; then continue; fi
      mkdir -p "$out"
      # shellcheck disable=SC2086
      "$python" launchers/search.py --method="$method" --preset="paper_$task" --objective="$env" \
        --budget="$budget" --seed="$seed" --iterate_every="$every" $args --noprogress \
        --run_dir="$run_dir" >> "$out/$method-$task-$seed.log" 2>&1
    done
  done
done
