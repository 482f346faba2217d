#!/usr/bin/env bash
# LAMBDA's penalty on saferl_PointHazard-v0 (docs/BENCHMARKS.md): 8k steps, seeds
# 0 and 1, two runs at a time: (a) no safety, (b) the paper's penalty schedule,
# (c) the augmented Lagrangian from 0 with c = 1e-3 fixed, (d) the PID Lagrangian.
# Usage: tools/lambda_penalty_runs.sh [OUTPUT_DIR]   (default runs/penalty; resumable)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/penalty}
mkdir -p "$out"
run() {  # variant seed args...
  local variant=$1 seed=$2
  shift 2
  .venv/bin/saferl-train --env=saferl_PointHazard-v0 --seed="$seed" --eval_every=1000 \
    --eval_episodes=3 --noprogress --run_dir="$out/$variant/saferl_PointHazard-v0/$seed" "$@" \
    > "$out/$variant-$seed.log" 2>&1
}
for seed in 0 1; do
  run no_safety "$seed" --config=hazard --nosafety &
  run paper_penalty "$seed" --safety --config=hazard,paper_penalty
  wait
  run augmented_c1e-3 "$seed" --safety --config=hazard --config.initial_penalty=0.001 &
  run pid "$seed" --safety --config=hazard,pid
  wait
done
