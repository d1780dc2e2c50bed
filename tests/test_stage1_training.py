"""The stage-1 training script as users run it: end to end, on two processes, killed and resumed, and stopped by a
NaN loss. Every run trains for real on the bundled digits (real 8x8 handwritten digits)."""

import json
import math
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
from stage1_autoencoders.train import parse_args
from training_runs import STAGE1 as SCRIPT
from training_runs import launch, logged

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--dataset_name", "digits", "--hidden_channels", "16", "32", "--eval_batch_size", "512"]


def run_script(*args, **options):
    return launch(SCRIPT, *args, **options)


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


@pytest.mark.slow
@pytest.mark.parametrize("warmup, accumulation, quantizer", [(0, 1, []), (4, 2, []), (0, 1, ["--fsq_levels", "5", "5"])],
                         ids=["default_flags", "warmup_and_accumulation", "fsq"])
def test_two_processes_match_one_process_with_the_same_global_batch(warmup, accumulation, quantizer, tmp_path):
    # The default schedule (cosine) runs to lr 0 at the last step in both. The VQ-VAE exercises the cross-rank
    # parts: DDP gradients, EMA codebook statistics summed over ranks, and FSQ's input standardisation over the
    # global batch. k-means init and dead-code restarts draw from rank 0's batch alone, so they are off for an exact
    # comparison. --eval_batch_size 55 makes 7 test batches of digits' 360 images, which Accelerate's sharding would
    # have padded with repeats.
    common = ["--model", "vqvae", *SMALL, "--eval_batch_size", "55", "--max_train_steps", "12", "--num_embeddings", "16",
              "--no-kmeans_init", "--dead_code_threshold", "0", "--report_to", "tensorboard", *quantizer]
    if warmup or accumulation > 1:
        common += ["--lr_warmup_steps", str(warmup), "--gradient_accumulation_steps", str(accumulation)]
    two = run_script(*common, "--train_batch_size", "16", "--output_dir", str(tmp_path / "two"), processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_script(*common, "--train_batch_size", "32", "--output_dir", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]

    info, one_info = (json.loads((tmp_path / run / "training_info.json").read_text()) for run in ("two", "one"))
    assert info["num_processes"] == 2 and info["steps"] == one_info["steps"] == 12
    first_rank, second_rank = info["final_metrics"]["weights_checksum_per_rank"]
    assert first_rank == second_rank, "the two ranks ended with different weights"
    two_weights, one_weights = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert two_weights.keys() == one_weights.keys()
    # Biases that FSQ's standardisation subtracts again have rounding noise for a gradient, which Adam scales to
    # whole steps: they and the running mean that follows them differ by ~1e-4; the test losses below show that
    # the outputs do not.
    cancelled = {"pre_quantization.bias", "quantizer.project_in.bias", "quantizer.normalize.running_mean"} if quantizer else set()
    for name in one_weights.keys() - cancelled:
        assert torch.allclose(two_weights[name], one_weights[name], atol=1e-4, rtol=1e-4), name

    two_lr, one_lr = logged(tmp_path / "two", "lr"), logged(tmp_path / "one", "lr")
    assert sorted(one_lr) == list(range(1, 13)) and sorted(two_lr) == sorted(one_lr)
    for step in one_lr:
        assert two_lr[step] == pytest.approx(one_lr[step], rel=1e-6, abs=1e-12), step
    halfway = (warmup + 12) // 2  # half-way from the end of the warm-up to the last step
    assert one_lr[halfway] == pytest.approx(0.5e-3) and one_lr[12] == pytest.approx(0.0, abs=1e-12)  # the whole cosine
    for name in ("test/loss", "test/reconstruction", "test/commitment"):  # every test image counted once
        assert info["final_metrics"][name] == pytest.approx(one_info["final_metrics"][name], rel=1e-4), name


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
    with pytest.raises(SystemExit, match="cannot be used: .* has no manifest.json"):
        train_main(["--model", "ae", *SMALL, "--output_dir", str(tmp_path), "--resume_from_checkpoint", str(tmp_path)])


def test_loading_a_checkpoint_of_another_model_type_is_refused(tmp_path):
    VQVAE(image_size=8, hidden_channels=(16, 32)).save_pretrained(tmp_path)
    with pytest.raises(Exception, match="vqvae"):
        VAE.from_pretrained(str(tmp_path))
    assert isinstance(VQVAE.from_pretrained(str(tmp_path)), VQVAE)


def tiny_run(output_dir, *flags, model="ae"):
    """A few steps of a small model: seconds, in this process."""
    train_main(["--model", model, *SMALL, "--latent_dim", "4", "--output_dir", str(output_dir), *flags])


def test_a_run_resumed_from_its_final_checkpoint_trains_no_further(tmp_path):
    # Step 12 falls mid-epoch (digits: 23 batches of 64). A constant schedule makes an extra step show in the weights.
    flags = ["--max_train_steps", "12", "--checkpointing_steps", "12", "--lr_scheduler", "constant"]
    tiny_run(tmp_path, *flags)
    finished = weights(tmp_path)
    (tmp_path / "model.safetensors").unlink()  # as if the run died while saving the final model
    tiny_run(tmp_path, *flags, "--resume_from_checkpoint", "latest")
    assert json.loads((tmp_path / "training_info.json").read_text())["steps"] == 12
    for name, tensor in weights(tmp_path).items():
        assert torch.equal(tensor, finished[name]), name


def test_a_fresh_run_into_another_runs_folder_is_refused_unless_overwritten(tmp_path):
    tiny_run(tmp_path, "--max_train_steps", "20", "--checkpointing_steps", "20")
    with pytest.raises(SystemExit, match="already holds another run's checkpoints"):
        tiny_run(tmp_path, "--max_train_steps", "10", "--checkpointing_steps", "5", "--checkpoints_total_limit", "1")
    tiny_run(tmp_path, "--max_train_steps", "10", "--checkpointing_steps", "5", "--checkpoints_total_limit", "1",
             "--overwrite_output_dir")
    # The old run's checkpoint-20 is gone, so pruning keeps this run's newest and "latest" is this run's.
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-10"]
    tiny_run(tmp_path, "--max_train_steps", "10", "--resume_from_checkpoint", "latest")
    assert json.loads((tmp_path / "training_info.json").read_text())["steps"] == 10


@pytest.mark.parametrize("changed, message", [
    (["--model", "beta_vae"], "--model is 'beta_vae' here but 'vae'"),
    (["--latent_dim", "8"], "--latent_dim is 8 here but 4"),
    (["--likelihood", "bernoulli"], "--likelihood is 'bernoulli' here but 'gaussian'"),  # digits: auto is gaussian
    (["--seed", "1"], "--seed is 1 here but 0"),
])
def test_resuming_with_a_flag_that_defines_the_run_changed_is_refused(changed, message, tmp_path):
    tiny_run(tmp_path, "--max_train_steps", "4", "--checkpointing_steps", "4", model="vae")
    model = changed[1] if changed[0] == "--model" else "vae"
    others = [] if changed[0] == "--model" else changed
    with pytest.raises(SystemExit, match=message.replace("(", r"\(")) as refused:
        tiny_run(tmp_path, "--max_train_steps", "8", "--resume_from_checkpoint", "latest", *others, model=model)
    assert "Resume with the flags the run started with" in str(refused.value)


def test_beta_change_is_refused_for_a_beta_vae(tmp_path):
    tiny_run(tmp_path, "--max_train_steps", "4", "--checkpointing_steps", "4", model="beta_vae")
    with pytest.raises(SystemExit, match="--beta is 2.0 here but 4.0"):
        tiny_run(tmp_path, "--max_train_steps", "8", "--resume_from_checkpoint", "latest", "--beta", "2", model="beta_vae")


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_resuming_honours_a_new_learning_rate_and_more_steps(tmp_path, schedule):
    flags = ["--lr_scheduler", schedule, "--report_to", "tensorboard"]
    tiny_run(tmp_path, "--max_train_steps", "4", "--checkpointing_steps", "4", *flags)
    tiny_run(tmp_path, "--max_train_steps", "8", "--resume_from_checkpoint", "latest", "--learning_rate", "5e-4", *flags)
    lr = logged(tmp_path, "lr")  # the rate after each step
    if schedule == "constant":
        expected = [1e-3] * 4 + [5e-4] * 4
    else:  # cosine to 0 over 4 steps; resumed, the cosine over the new 8 at step 5, from the new rate
        expected = ([1e-3 * (1 + math.cos(math.pi * step / 4)) / 2 for step in range(1, 5)]
                    + [5e-4 * (1 + math.cos(math.pi * step / 8)) / 2 for step in range(5, 9)])
    assert [lr[step] for step in range(1, 9)] == pytest.approx(expected, abs=1e-9)
    info = json.loads((tmp_path / "training_info.json").read_text())
    assert info["steps"] == 8 and info["learning_rate"] == 5e-4


def test_the_weight_average_starts_at_the_weights_and_warms_up_as_diffusers_does():
    from training.ema import WeightAverage

    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, max_decay=0.5, inv_gamma=1.0, power=0.75)
    steps = []
    for step in range(4):
        with torch.no_grad():
            model.weight.fill_(float(step + 1))
        steps.append(average.decay())
        average.update(model)
    assert steps == pytest.approx([0.0, 1 - 2 ** -0.75, 0.5, 0.5])  # 1 - (1 + step) ** -power, capped
    expected = 1.0
    for decay, value in zip(steps[1:], (2.0, 3.0, 4.0)):
        expected = decay * expected + (1 - decay) * value
    with average.applied_to(model):
        assert torch.allclose(model.weight, torch.full_like(model.weight, expected))
    assert torch.equal(model.weight, torch.full_like(model.weight, 4.0))  # the live weights come back


def test_use_ema_saves_the_weight_average_and_resumes_to_the_uninterrupted_runs_weights(tmp_path):
    # The default schedule (cosine), so that the averaged weights differ from the last ones in every step.
    tiny_run(tmp_path / "plain", "--max_train_steps", "12")
    tiny_run(tmp_path / "ema", "--max_train_steps", "12", "--checkpointing_steps", "6", "--use_ema")
    plain, averaged_run = weights(tmp_path / "plain"), weights(tmp_path / "ema")
    assert not all(torch.allclose(plain[name], averaged_run[name]) for name in plain)  # the average, not the last weights
    assert (tmp_path / "ema" / "checkpoints" / "checkpoint-6" / "ema.safetensors").is_file()
    tiny_run(tmp_path / "resumed", "--max_train_steps", "12", "--use_ema",
             "--resume_from_checkpoint", str(tmp_path / "ema" / "checkpoints" / "checkpoint-6"))
    for name, tensor in weights(tmp_path / "resumed").items():
        assert torch.equal(tensor, averaged_run[name]), name
    with pytest.raises(SystemExit, match="--use_ema is False here but True"):
        tiny_run(tmp_path / "again", "--max_train_steps", "12",
                 "--resume_from_checkpoint", str(tmp_path / "ema" / "checkpoints" / "checkpoint-6"))


def test_damaged_checkpoints_are_named_and_latest_falls_back_to_an_intact_one(tmp_path, capsys):
    tiny_run(tmp_path, "--max_train_steps", "8", "--checkpointing_steps", "4")
    newest = tmp_path / "checkpoints" / "checkpoint-8"
    random_states = newest / "random_states_0.pkl"
    random_states.write_bytes(random_states.read_bytes()[:100])  # truncated
    with pytest.raises(SystemExit, match="random_states_0.pkl is 100 bytes, the manifest says"):
        tiny_run(tmp_path, "--max_train_steps", "8", "--resume_from_checkpoint", str(newest))
    capsys.readouterr()
    tiny_run(tmp_path, "--max_train_steps", "8", "--resume_from_checkpoint", "latest")
    out = capsys.readouterr().out
    assert "Skipping a damaged checkpoint" in out and "Resuming from" in out and "checkpoint-4 (step 4)" in out

    # The same size but not a random state: the manifest cannot tell, loading it first can.
    tiny_run(tmp_path, "--max_train_steps", "8", "--checkpointing_steps", "4", "--overwrite_output_dir")
    random_states.write_bytes(b"\0" * random_states.stat().st_size)
    with pytest.raises(SystemExit, match="random_states_0.pkl cannot be used: it cannot be read"):
        tiny_run(tmp_path, "--max_train_steps", "8", "--resume_from_checkpoint", str(newest))
    model_file = newest / "model.safetensors"
    model_file.write_bytes(b"\0" * model_file.stat().st_size)
    (newest / "random_states_0.pkl").unlink()
    with pytest.raises(SystemExit, match="random_states_0.pkl is missing"):
        tiny_run(tmp_path, "--max_train_steps", "8", "--resume_from_checkpoint", str(newest))


def test_resuming_with_another_number_of_processes_is_refused_in_one_line(tmp_path):
    flags = ["--model", "ae", *SMALL, "--latent_dim", "4", "--checkpointing_steps", "4", "--max_train_steps"]
    assert run_script(*flags, "4", "--output_dir", str(tmp_path / "two"), processes=2).returncode == 0
    with pytest.raises(SystemExit, match=r"checkpoint-4 was written by 2 processes and this run has 1: each continues "
                                         r"from its own random state. Resume with as many \(accelerate launch --num_processes 2\)"):
        train_main([*flags, "8", "--output_dir", str(tmp_path / "two"), "--resume_from_checkpoint", "latest"])
    tiny_run(tmp_path / "one", "--max_train_steps", "4", "--checkpointing_steps", "4")
    result = run_script(*flags, "8", "--output_dir", str(tmp_path / "one"), "--resume_from_checkpoint", "latest", processes=2)
    refusals = [line for line in result.stderr.splitlines() if "was written by 1 process and this run has 2" in line]
    # Every rank reads the count in run.json and refuses (the first to exit has the launcher stop the others, so one
    # line at least); none goes on to train and die in a collective.
    assert result.returncode != 0 and refusals, result.stderr[-2000:]
    assert "Connection closed by peer" not in result.stderr and "train_step" not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_full_disk_during_a_checkpoint_keeps_the_earlier_ones(tmp_path, processes):
    flags = ["--model", "ae", *SMALL, "--latent_dim", "4", "--output_dir", str(tmp_path), "--checkpointing_steps", "4"]
    assert run_script(*flags, "--max_train_steps", "4", processes=processes).returncode == 0

    def small_file_limit():  # files over 64 KiB cannot be written, as on a full disk (EFBIG instead of ENOSPC)
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = run_script(*flags, "--max_train_steps", "8", "--resume_from_checkpoint", "latest", processes=processes,
                        preexec_fn=small_file_limit)  # two ranks: the writer fails; the launcher stops the other, no hang
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "Could not write checkpoint" in line]
    assert errors and "checkpoint-8" in errors[0] and "MiB free" in errors[0], result.stderr[-2000:]
    if processes == 1:
        assert result.stderr.strip().splitlines()[-1] == errors[0]  # one line, no traceback
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-4"]  # no .partial left behind
    from training.checkpoints import checkpoint_problem
    assert checkpoint_problem(str(tmp_path / "checkpoints" / "checkpoint-4")) is None


@pytest.mark.parametrize("flags, message", [
    (["--latent_dim", "0"], "--latent_dim 0"),
    (["--num_embeddings", "1"], "--num_embeddings 1"),
    (["--checkpointing_steps", "0"], "--checkpointing_steps 0"),
    (["--learning_rate", "-1"], "--learning_rate -1"),
    (["--resolution", "100000"], "--resolution 100000"),
    (["--num_train_epochs", "0"], "--num_train_epochs 0"),
    (["--lr_warmup_steps", "-2"], "--lr_warmup_steps -2"),
])
def test_bad_flags_are_refused_in_one_line(flags, message):
    # A SystemExit with a message: Python prints that one line and exits with status 1, no traceback.
    with pytest.raises(SystemExit, match=message) as refused:
        parse_args(["--model", "vae", *flags])
    assert isinstance(refused.value.code, str) and "\n" not in refused.value.code


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: cosine)" in text and "(default: 0.001)" in text and "(default: 500)" in text


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_bf16_on_cpu_trains_and_resumes(model, tmp_path):
    # Separate processes: Accelerate's state, mixed precision included, is set once per process.
    flags = ["--model", model, *SMALL, "--latent_dim", "4", "--mixed_precision", "bf16", "--num_embeddings", "16",
             "--learning_rate", "3e-3", "--report_to", "tensorboard", "--max_train_steps", "24"]
    straight = run_script(*flags, "--checkpointing_steps", "12", "--output_dir", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    # Output that is not a terminal gets plain progress lines, no bar redrawn with carriage returns.
    assert "\r" not in straight.stdout + straight.stderr and f"{model}: step 24/24" in straight.stderr
    assert any(line.startswith("epoch 0: test/loss=") for line in straight.stdout.splitlines())
    info = json.loads((tmp_path / "straight" / "training_info.json").read_text())
    assert info["mixed_precision"] == "bf16"
    loss = logged(tmp_path / "straight", "train/loss")
    assert loss[24] < loss[1] - 5.0, (loss[1], loss[24])  # nats per image
    # Resumed into another folder from the straight run's step 12, it ends where the straight run did.
    resumed = run_script(*flags, "--output_dir", str(tmp_path / "resumed"),
                         "--resume_from_checkpoint", str(tmp_path / "straight" / "checkpoints" / "checkpoint-12"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = weights(tmp_path / "straight")
    for name, tensor in weights(tmp_path / "resumed").items():
        assert torch.equal(tensor, expected[name]), name


def test_the_benchmark_loop_trains_what_train_py_trains(tmp_path):
    # benchmarks/stage1_loop.py times train.py's own train_step: the same steps give the same weights.
    sys.path.insert(0, str(REPO / "benchmarks"))
    from stage1_loop import Stage1Loop, stage1_arguments
    from accelerate import Accelerator

    flags = [*SMALL, "--num_embeddings", "16", "--output_dir", str(tmp_path / "script")]
    train_main(["--model", "vqvae", "--lr_scheduler", "constant", "--max_train_steps", "6", *flags])
    loop = Stage1Loop(stage1_arguments("vqvae", 64, 1e-3, 0, *flags), load_image_data("digits"), Accelerator(), warmup_steps=0)
    loop.train_steps(6)
    expected = weights(tmp_path / "script")
    for name, tensor in loop.trained_model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


@pytest.mark.slow
def test_two_processes_resume_the_same_intact_checkpoint(tmp_path):
    # Rank 1's random state of the newest checkpoint is damaged: the main process decides for both ranks, so both
    # fall back to the checkpoint before it (each rank deciding alone would split them between two checkpoints).
    common = ["--model", "ae", *SMALL, "--latent_dim", "4", "--train_batch_size", "16", "--checkpointing_steps", "4",
              "--output_dir", str(tmp_path)]
    first = run_script(*common, "--max_train_steps", "8", processes=2)
    assert first.returncode == 0, first.stderr[-3000:]
    damaged = tmp_path / "checkpoints" / "checkpoint-8" / "random_states_1.pkl"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    resumed = run_script(*common, "--max_train_steps", "12", "--resume_from_checkpoint", "latest", processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Skipping a damaged checkpoint" in resumed.stdout and "random_states_1.pkl" in resumed.stdout
    info = json.loads((tmp_path / "training_info.json").read_text())
    assert info["steps"] == 12 and info["resumed_from_checkpoint"].endswith("checkpoint-4")
    first_rank, second_rank = info["final_metrics"]["weights_checksum_per_rank"]
    assert first_rank == second_rank
