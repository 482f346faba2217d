#!/usr/bin/env bash
# The LAMBDA-BO experiment (docs/BENCHMARKS.md): constrained BO of LAMBDA's
# discount and lambda_ on sgym_Safexp-PointGoal2-v0 (vectors, 100-step
# episodes, the `bo_trial` preset: 20k steps, about 8 minutes per trial on 2
# cores), 24 trials (8 initial design points, then BO), 2 workers, per base seed:
#   eci      --backend=trieste, expected constrained improvement on the return
#            subject to the episode cost limit (2.5 per 100-step episode)
#   penalty  --objective=penalty: EI on the seed's folded 100 cost_rate +
#            episode_cost - return
#   skopt    --backend=skopt on that penalty
#   penalty_settings  eci over the penalty's own settings (initial_penalty,
#            penalty_growth of the augmented Lagrangian)
# The base seed fixes the initial design, so the studies of one seed start from
# the same 8 points. After each study its best_config.yaml is retrained on seeds
# 100-102 for 20k steps (saferl-sweep). Resumable: run the same command again.
# Usage: [SEEDS="0 1 2"] [STUDIES="eci penalty skopt penalty_settings"]
#        tools/lambda_bo_runs.sh [OUTPUT_DIR]     (default results/lambda_bo)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/lambda_bo}
python=${PYTHON:-.venv/bin/python}
env=sgym_Safexp-PointGoal2-v0
for seed in ${SEEDS:-0 1 2}; do
  for study in ${STUDIES:-eci penalty skopt penalty_settings}; do
    space=discount:0.8:1,lambda_:0.8:1 args=()
    case $study in
      eci) ;;
      penalty) args=(--objective=penalty) ;;
      skopt) args=(--backend=skopt) ;;
      penalty_settings) space=initial_penalty:1e-5:1e-1:log,penalty_growth:1e-6:1e-3:log ;;
      *) echo "unknown study $study (accepted: eci, penalty, skopt, penalty_settings)" >&2; exit 2 ;;
    esac
    study_dir="$out/$study/$seed"
    mkdir -p "$study_dir"
    "$python" launchers/tune.py --agent=lambda --config=bo_trial --env="$env" --safety \
      --space="$space" --trials=24 --initial=8 --workers=2 --trial_steps=20000 \
      --eval_episodes=5 --train_args=--episode_length=100 --seed="$seed" \
      --study_dir="$study_dir" "${args[@]}" >> "$study_dir/tune.log" 2>&1
    if [ -f "$study_dir/best_config.yaml" ]; then
      "$python" launchers/sweep.py --agents=lambda --envs="$env" --seeds=100-102 --safety \
        --config="bo_trial,$study_dir/best_config.yaml" --episode_length=100 \
        --total_steps=20000 --eval_every=5000 --eval_episodes=5 --workers=2 \
        --results_dir="$out/retrain/$study/$seed" >> "$study_dir/retrain.log" 2>&1
    fi
  done
done
