#!/usr/bin/env bash
# The whole two-stage pipeline, end to end: stage-1 autoencoders, stage-2 priors, then one evaluation report.
#   bash run_pipeline.sh                                    # the bundled digits, offline, a few minutes on 2 CPU cores
#   DATASET=ylecun/mnist EPOCHS=2 bash run_pipeline.sh      # any --dataset_name; a local copy works the same way
# Outputs land in $RUNS (default runs/): one folder per model or prior, and $RUNS/report/REPORT.md.
set -euo pipefail
cd "$(dirname "$0")"
DATASET=${DATASET:-digits}
EPOCHS=${EPOCHS:-15}
PRIOR_EPOCHS=${PRIOR_EPOCHS:-$EPOCHS}
RUNS=${RUNS:-runs}
SEED=${SEED:-0}  # every training run, mixture fit and the evaluation (benchmarks/compare_priors.py --seeds sets it)
BATCH=${BATCH:-64}
# The digits have 17 grey levels, which a Gaussian likelihood fits; Bernoulli suits near-binary MNIST.
LIKELIHOOD=${LIKELIHOOD:-$([ "$DATASET" = digits ] && echo gaussian || echo bernoulli)}
EXTRA=${EXTRA:-}  # more flags for every training run, e.g. "--resolution 32" or "--hidden_channels 32 64 128"
EVAL_EXTRA=${EVAL_EXTRA:-}  # more flags for the evaluation, e.g. "--num_samples 2000 --max_eval_samples 2000"

# SKIP_INSTALL=1 where the project is importable already (a shared environment, PYTHONPATH set).
[ "${SKIP_INSTALL:-0}" = 1 ] || python -m pip install -q -e . >/dev/null 2>&1 || python -m pip install -e .
export ACCELERATE_USE_CPU=${ACCELERATE_USE_CPU:-$(python -c "import torch; print(int(not torch.cuda.is_available()))")}
# --cpu on a CPU: without it accelerate's launcher sets OMP_NUM_THREADS=1; with it (OMP_NUM_THREADS unset, no accelerate
# config file) one thread per physical core. Patterns, not ${var,,}: macOS's bash 3.2 has no lower-casing.
case "$ACCELERATE_USE_CPU" in 1|[Tt]rue|TRUE|[Yy]es|YES|[Oo]n|ON) cpu_flag=--cpu ;; *) cpu_flag= ;; esac
launch() { accelerate launch $cpu_flag --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no "$@"; }
common=(--dataset_name "$DATASET" --likelihood "$LIKELIHOOD" --train_batch_size "$BATCH" --checkpointing_steps 1000 --checkpoints_total_limit 1 --seed "$SEED" --overwrite_output_dir $EXTRA)

echo "== stage 1: autoencoders on $DATASET"
launch stage1_autoencoders/train.py --model ae       --latent_dim 8 --num_train_epochs "$EPOCHS" --output_dir "$RUNS/ae" "${common[@]}"
launch stage1_autoencoders/train.py --model vae      --latent_dim 8 --num_train_epochs "$EPOCHS" --output_dir "$RUNS/vae" "${common[@]}"
launch stage1_autoencoders/train.py --model beta_vae --latent_dim 8 --beta 2 --num_train_epochs "$EPOCHS" --output_dir "$RUNS/beta_vae-2" "${common[@]}"
launch stage1_autoencoders/train.py --model beta_vae --latent_dim 8 --beta 10 --num_train_epochs "$EPOCHS" --output_dir "$RUNS/beta_vae-10" "${common[@]}"
launch stage1_autoencoders/train.py --model vamp_vae --latent_dim 8 --num_train_epochs "$EPOCHS" --output_dir "$RUNS/vamp_vae" "${common[@]}"
launch stage1_autoencoders/train.py --model vqvae    --num_embeddings 32 --num_train_epochs "$EPOCHS" --output_dir "$RUNS/vqvae" "${common[@]}"

echo "== stage 2: learned priors"
# Both PixelCNNs: the unconditional one against uniform codes, the class-conditional one against per-class code
# frequencies (the report fits that baseline); labels are information an unconditional baseline does not have.
# Their data is the VQ-VAE run's own, as it recorded it (test split included), so no data flag is repeated here.
prior_common=(--vqvae "$RUNS/vqvae" --num_train_epochs "$PRIOR_EPOCHS" --train_batch_size "$BATCH"
              --checkpointing_steps 1000 --checkpoints_total_limit 1 --seed "$SEED" --overwrite_output_dir)
launch stage2_prior/train.py "${prior_common[@]}" --output_dir "$RUNS/vqvae-pixelcnn"
launch stage2_prior/train.py "${prior_common[@]}" --conditional --output_dir "$RUNS/vqvae-pixelcnn-conditional"
for model in ae vae beta_vae-2 beta_vae-10; do
  python -m stage2_prior.fit_mixture --autoencoder "$RUNS/$model" --n_components 10 --seed "$SEED" --output_dir "$RUNS/$model-gmm"
done
for prior in maf nsf two_stage_vae; do
  launch stage2_prior/fit_latent_prior.py --autoencoder "$RUNS/vae" --prior "$prior" --output_dir "$RUNS/vae-$prior" \
    --checkpointing_steps 1000 --checkpoints_total_limit 1 --seed "$SEED" --overwrite_output_dir
done

echo "== evaluation"
python -m evaluation.evaluate "$RUNS"/ae "$RUNS"/vae "$RUNS"/beta_vae-2 "$RUNS"/beta_vae-10 "$RUNS"/vamp_vae "$RUNS"/vqvae \
  "$RUNS"/*-gmm "$RUNS"/vae-{maf,nsf,two_stage_vae} "$RUNS"/vqvae-pixelcnn "$RUNS"/vqvae-pixelcnn-conditional \
  --seed "$SEED" --output_dir "$RUNS/report" $EVAL_EXTRA
echo "Report: $RUNS/report/REPORT.md"
