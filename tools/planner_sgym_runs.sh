#!/usr/bin/env bash
# Issue 16's evidence that the pessimistic planner runs on safety-gymnasium:
# `pessimistic` against `cem` (no cost in its objective) on
# sgym_SafetyPointGoal1-v0 with --safety and the `safety_gym` preset (a budget
# of 25 per 1,000-step episode, refits every 250 steps), the pessimistic
# planner with the `cpu` preset on top (1,500 rollouts per control step against
# cem's 2,500; at its full size a run would take about 4 hours of planning),
# 20k steps, seeds 0-1, one run at a time. Resumable: run the same command again.
# Usage: [SEEDS="0 1"] [AGENTS="cem pessimistic"] [STEPS=20000]
#        tools/planner_sgym_runs.sh [OUTPUT_DIR]      (default runs/planner_sgym)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/planner_sgym}
steps=${STEPS:-20000}
python=${PYTHON:-.venv/bin/python}
env=sgym_SafetyPointGoal1-v0
for seed in ${SEEDS:-0 1}; do
  for agent in ${AGENTS:-cem pessimistic}; do
    config=safety_gym
    [ "$agent" = pessimistic ] && config=safety_gym,cpu
    run_dir="$out/$agent/$env/$seed"
    if [ -f "$run_dir/summary.json" ] && grep -q "\"env_steps\": $steps" "$run_dir/summary.json"; then
      continue
    fi
    mkdir -p "$out"
    "$python" -m saferl_tf.cli.train --agent="$agent" --env="$env" --seed="$seed" --safety \
      --config="$config" --total_steps="$steps" --eval_every=5000 --eval_episodes=1 \
      --checkpoint_every=1000 --noprogress --run_dir="$run_dir" >> "$out/$agent-$seed.log" 2>&1
  done
done
