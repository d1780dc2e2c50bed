"""The stage-1 training script as users run it: end to end, on two processes, killed and resumed, and stopped by a
NaN loss. Every run trains for real on the bundled digits (real 8x8 handwritten digits)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from stage1_autoencoders import MODELS, VAE, VQVAE
from stage1_autoencoders.data import load_image_data, to_float
from stage1_autoencoders.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "stage1_autoencoders" / "train.py")
SMALL = ["--dataset_name", "digits", "--hidden_channels", "16", "32", "--eval_batch_size", "512"]


def run_script(*args, processes=1, env_extra=None, **popen):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    if processes == 1:
        command = [sys.executable, SCRIPT, *args]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
                   SCRIPT, *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, **popen)


def untrained_test_reconstruction(model_class, trained) -> float:
    """The test-split reconstruction NLL of a freshly initialised model of the same configuration."""
    torch.manual_seed(0)
    fresh = model_class(**{k: v for k, v in trained._hub_mixin_config.items() if k not in ("model_type", "twostage_version")})
    data = load_image_data("digits")
    with torch.no_grad():
        return fresh.eval()(to_float(data.test_images)).terms["reconstruction"].item()


def weights(folder) -> dict:
    return safetensors.torch.load_file(os.path.join(folder, "model.safetensors"))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_training_writes_a_loadable_model_images_and_info(model, tmp_path):
    train_main(["--model", model, *SMALL, "--output_dir", str(tmp_path), "--max_train_steps", "30",
                "--train_batch_size", "64", "--learning_rate", "3e-3", "--checkpointing_steps", "20", "--latent_dim", "4", "--num_embeddings", "16"])
    loaded = MODELS[model].from_pretrained(str(tmp_path))
    assert isinstance(loaded, MODELS[model])
    info = json.loads((tmp_path / "training_info.json").read_text())
    assert info["steps"] == 30 and info["dataset"]["source"] == "digits"
    metrics = info["final_metrics"]
    untrained = untrained_test_reconstruction(MODELS[model], loaded)
    assert metrics["test/reconstruction"] < untrained - 3.0, (metrics["test/reconstruction"], untrained)
    if model == "vqvae":
        assert 0 < metrics["test/codebook_usage"] <= 1 and metrics["test/perplexity"] >= 1
    assert (tmp_path / "samples.png").is_file()
    assert (tmp_path / "samples" / "reconstructions-epoch000.png").is_file()
    assert (tmp_path / "samples" / "samples-epoch000.png").is_file() == (model in ("vae", "beta_vae", "vamp_vae"))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-20"]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    # The VQ-VAE exercises the cross-rank parts: DDP gradients, and EMA codebook statistics summed over ranks.
    # k-means init and dead-code restarts draw from rank 0's batch alone, so they are off for an exact comparison.
    common = ["--model", "vqvae", *SMALL, "--max_train_steps", "12", "--num_embeddings", "16", "--no-kmeans_init",
              "--dead_code_threshold", "0", "--checkpointing_steps", "1000", "--lr_scheduler", "constant"]
    two = run_script(*common, "--train_batch_size", "16", "--output_dir", str(tmp_path / "two"), processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_script(*common, "--train_batch_size", "32", "--output_dir", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]

    info = json.loads((tmp_path / "two" / "training_info.json").read_text())
    assert info["num_processes"] == 2
    first_rank, second_rank = info["final_metrics"]["weights_checksum_per_rank"]
    assert first_rank == second_rank, "the two ranks ended with different weights"
    two_weights, one_weights = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert two_weights.keys() == one_weights.keys()
    for name in one_weights:
        assert torch.allclose(two_weights[name], one_weights[name], atol=1e-4, rtol=1e-4), name


def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_weights(tmp_path):
    # The VAE draws noise every step, so this also checks that the RNG state is restored, not only the weights.
    common = ["--model", "vae", *SMALL, "--resolution", "16", "--hidden_channels", "32", "64", "--train_batch_size", "32",
              "--max_train_steps", "60", "--checkpointing_steps", "10", "--latent_dim", "4"]
    reference = run_script(*common, "--output_dir", str(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr[-3000:]

    interrupted = tmp_path / "interrupted"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, SCRIPT, *common, "--output_dir", str(interrupted)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (interrupted / "checkpoints" / "checkpoint-20").is_dir():
        assert process.poll() is None, "the run ended before its second checkpoint"
        if time.time() > deadline:  # a guard against hanging forever, not a speed check
            process.kill()
            pytest.fail("no second checkpoint within 300 s")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model.safetensors").exists(), "the run finished before it could be killed"

    resumed = run_script(*common, "--output_dir", str(interrupted), "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout + resumed.stderr
    expected, got = weights(tmp_path / "reference"), weights(interrupted)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    # A learning rate of 1e9 with clipping off blows the weights up within a few steps.
    result = run_script("--model", "ae", *SMALL, "--output_dir", str(tmp_path), "--max_train_steps", "200",
                        "--checkpointing_steps", "1", "--checkpoints_total_limit", "2", "--learning_rate", "1e9",
                        "--max_grad_norm", "0", "--lr_scheduler", "constant", "--adam_beta1", "0", "--adam_beta2", "0")
    assert result.returncode != 0
    assert "NonFiniteLossError" in result.stderr and "The loss became" in result.stderr
    assert "--resume_from_checkpoint latest" in result.stderr
    checkpoints = sorted((tmp_path / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "no checkpoint survived"
    state = safetensors.torch.load_file(checkpoints[-1] / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in state.values()), "the kept checkpoint holds non-finite weights"
    assert not (tmp_path / "model.safetensors").exists()


def test_resume_from_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        train_main(["--model", "ae", *SMALL, "--output_dir", str(tmp_path), "--resume_from_checkpoint", str(tmp_path)])


def test_loading_a_checkpoint_of_another_model_type_is_refused(tmp_path):
    VQVAE(image_size=8, hidden_channels=(16, 32)).save_pretrained(tmp_path)
    with pytest.raises(Exception, match="vqvae"):
        VAE.from_pretrained(str(tmp_path))
    assert isinstance(VQVAE.from_pretrained(str(tmp_path)), VQVAE)
