#!/usr/bin/env bash
# LAMBDA's penalty on saferl_PointHazard-v0 (docs/BENCHMARKS.md): 8k steps, seeds
# 0 and 1, two runs at a time: (a) no safety, (b) the paper's penalty schedule,
# (c) the shipped defaults (the augmented Lagrangian with c from 1e-3), (d) the PID
# Lagrangian. VARIANTS="defaults pid" runs only those (default: all four).
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
variants=${VARIANTS:-no_safety paper_penalty defaults pid}
args() {
  case $1 in
    no_safety) echo "--config=hazard --nosafety" ;;
    paper_penalty) echo "--safety --config=hazard,paper_penalty" ;;
    defaults) echo "--safety --config=hazard" ;;
    pid) echo "--safety --config=hazard,pid" ;;
    *) echo "unknown variant $1 (no_safety, paper_penalty, defaults, pid)" >&2; exit 2 ;;
  esac
}
for seed in 0 1; do
  running=0
  for variant in $variants; do
    # shellcheck disable=SC2046  # The arguments are words.
    run "$variant" "$seed" $(args "$variant") &
    running=$((running + 1))
    if [ "$running" -eq 2 ]; then wait; running=0; fi
  done
  wait
done
