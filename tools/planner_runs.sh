#!/usr/bin/env bash
# The planner comparison of issue 16 on saferl_ConstrainedPendulum-v0: the
# reduced planner (the `pessimistic` default), SafeExploration's (`seed`
# preset) and its PesTraj baseline (`pessimistic_trajectory`, CEM with 10
# iterations as its safe-CEM pendulum config), --safety, 15 episodes of 200
# steps, seeds 0-2, one run at a time, cheapest first. Resumable: run the same
# command again; finished runs are skipped, stopped ones resume.
# Usage: [SEEDS="0 1 2"] [RUNS="reduced pestraj seed"] [STEPS=3000]
#        tools/planner_runs.sh [OUTPUT_DIR]      (default runs/planners)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/planners}
steps=${STEPS:-3000}
python=${PYTHON:-.venv/bin/python}
env=saferl_ConstrainedPendulum-v0
for run in ${RUNS:-reduced pestraj seed}; do
  case $run in
    reduced) agent=pessimistic config=reduced ;;
    seed) agent=pessimistic config=seed ;;
    pestraj) agent=pessimistic_trajectory config=seed,pestraj ;;
    *) echo "unknown run $run (accepted: reduced, seed, pestraj)" >&2; exit 2 ;;
  esac
  for seed in ${SEEDS:-0 1 2}; do
    run_dir="$out/$run/$agent/$env/$seed"
    if [ -f "$run_dir/summary.json" ] && grep -q "\"env_steps\": $steps" "$run_dir/summary.json"; then
      continue
    fi
    mkdir -p "$out/$run"
    "$python" -m saferl_tf.cli.train --agent="$agent" --env="$env" --seed="$seed" --safety \
      --config="$config" --total_steps="$steps" --eval_every=1000 --eval_episodes=1 \
      --checkpoint_every=200 --noprogress --run_dir="$run_dir" >> "$out/$run/$seed.log" 2>&1
  done
done
