#!/usr/bin/env bash
# CMBPO against model-free CPO and TRPO on sgym_SafetyHalfCheetahVelocity-v1
# (docs/BENCHMARKS.md): seeds 0-2; CMBPO 300k steps, CPO and TRPO 1M each, one
# run at a time. Resumable: run the same command again and finished runs are
# skipped, interrupted ones resume from their checkpoints.
# CMBPO_CONFIG names CMBPO's presets (for example cpu: the 2 x 200 model that
# makes a 300k-step run practical on 2 cores); its runs then go to cmbpo-CONFIG.
# Usage: [SEEDS="0 1 2"] [AGENTS="cmbpo cpo trpo"] [CMBPO_CONFIG=cpu] tools/cmbpo_runs.sh [OUTPUT_DIR]
# (default runs/halfcheetah). Streams on disjoint seeds or agents may run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/halfcheetah}
mkdir -p "$out"
env=sgym_SafetyHalfCheetahVelocity-v1
python=${PYTHON:-.venv/bin/python}
for seed in ${SEEDS:-0 1 2}; do
  for spec in cmbpo:300000 cpo:1000000 trpo:1000000; do
    agent=${spec%%:*} steps=${spec##*:}
    case " ${AGENTS:-cmbpo cpo trpo} " in *" $agent "*) ;; *) continue ;; esac
    config="" label=$agent
    if [ "$agent" = cmbpo ] && [ -n "${CMBPO_CONFIG:-}" ]; then
      config="--config=$CMBPO_CONFIG" label="cmbpo-${CMBPO_CONFIG//,/-}"
    fi
    run_dir="$out/$label/$env/$seed"
    if [ -f "$run_dir/summary.json" ] && grep -q "\"env_steps\": $steps" "$run_dir/summary.json"; then
      continue
    fi
    # shellcheck disable=SC2086
    "$python" -m saferl_tf.cli.train --agent="$agent" $config --env="$env" --seed="$seed" \
      --total_steps="$steps" --eval_every=50000 --eval_episodes=3 --checkpoint_every=20000 \
      --noprogress --run_dir="$run_dir" >> "$out/$label-$seed.log" 2>&1
  done
done
