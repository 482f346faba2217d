#!/usr/bin/env bash
# VaGraM against maximum likelihood on gym_Hopper-v4 (docs/BENCHMARKS.md, issue 15):
# (1) 5 distractor dimensions (the seed's `distraction` settings) and (2) the
# seed's 3 x 64 model (`small_model`), and (3) `safety`: SAC-Lagrangian with
# the VaGraM model against without a model (`sac`) on
# sgym_SafetyHopperVelocity-v1 with --safety; 3 seeds each, the `cpu` preset with the
# model refitted every 1,000 steps instead of 250 (a fit of the 7-member
# ensemble, at most 400 gradient steps in the preset, costs about 25 s on a
# core; see the README),
# graph mode (--nojit, faster than XLA on a CPU here), 50k steps (the safety
# runs 40k, SAFETY_STEPS: a 50k SAC-Lagrangian run did not fit in a 3-hour
# session beside the tests), evaluating 5 episodes every 5k steps. One run at
# a time, seed 0 of every pair first.
# Resumable: run the same command again; finished runs are skipped.
# AGENTS filters the agents (vagram, mbpo, sac), so two streams can split a pair.
# Usage: [SEEDS="0 1 2"] [SETTINGS="distraction small_model safety"] [AGENTS="vagram mbpo sac"]
#        [STEPS=50000] [SAFETY_STEPS=40000] tools/vagram_runs.sh [OUTPUT_DIR]
#        (default OUTPUT_DIR runs/hopper)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/hopper}
python=${PYTHON:-.venv/bin/python}
for seed in ${SEEDS:-0 1 2}; do
  for setting in ${SETTINGS:-distraction small_model safety}; do
    distractors=0 env=gym_Hopper-v4 agents="vagram mbpo" config="$setting,cpu" safety=""
    steps=${STEPS:-50000}
    [ "$setting" = distraction ] && distractors=5
    if [ "$setting" = safety ]; then
      env=sgym_SafetyHopperVelocity-v1 agents="vagram sac" config=cpu safety=--safety
      steps=${SAFETY_STEPS:-40000}
    fi
    for agent in $agents; do
      case " ${AGENTS:-vagram mbpo sac} " in *" $agent "*) ;; *) continue ;; esac
      run_dir="$out/$setting/$agent/$env/$seed"
      if [ -f "$run_dir/summary.json" ] && grep -q "\"env_steps\": $steps" "$run_dir/summary.json"; then
        continue
      fi
      mkdir -p "$out/$setting"
      "$python" -m saferl_tf.cli.train --agent="$agent" --env="$env" --seed="$seed" \
        --config="$config" --config.model_train_every=1000 --nojit $safety \
        --distraction_dimensions="$distractors" --total_steps="$steps" --eval_every=5000 \
        --eval_episodes=5 --checkpoint_every=2500 --noprogress --run_dir="$run_dir" \
        >> "$out/$setting/$agent-$seed.log" 2>&1
    done
  done
done
