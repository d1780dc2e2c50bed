"""The stage-2 training script (a gated PixelCNN over a VQ-VAE's codes) as users run it: on two processes with the
default flags, in bf16 on the CPU, and resumed. Every run trains for real on the codes of the bundled digits."""

from __future__ import annotations

import json
import shutil

import pytest
import safetensors.torch
import torch

from evaluation.models import load_models
from hub import from_pretrained
from stage1_autoencoders import VQVAE
from stage2_prior import train as stage2_train
from training_runs import STAGE2, launch, logged


@pytest.fixture
def vqvae_folder(tmp_path):
    torch.manual_seed(0)
    VQVAE(image_size=8, hidden_channels=[16, 32], num_embeddings=16, embedding_dim=8).eval().save_pretrained(tmp_path / "vqvae")
    return tmp_path / "vqvae"


def prior_flags(vqvae_folder, output_dir, *flags) -> list[str]:
    return ["--vqvae", str(vqvae_folder), "--dataset_name", "digits", "--hidden_channels", "8", "--num_layers", "2",
            "--codes_cache_dir", str(output_dir.parent / "codes"), "--output_dir", str(output_dir), *map(str, flags)]


def weights(folder) -> dict:
    return safetensors.torch.load_file(folder / "model.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("warmup, accumulation", [(0, 1), (4, 2)], ids=["default_flags", "warmup_and_accumulation"])
def test_two_processes_match_one_process_with_the_same_global_batch(warmup, accumulation, vqvae_folder, tmp_path):
    # The default schedule (cosine) runs to lr 0 at the last step in both. 7 test batches of 55 grids: the test NLL
    # counts each grid once (gather_for_metrics drops the padding).
    common = ["--max_train_steps", 12, "--eval_batch_size", 55, "--report_to", "tensorboard"]
    if warmup or accumulation > 1:
        common += ["--lr_warmup_steps", warmup, "--gradient_accumulation_steps", accumulation]
    two = launch(STAGE2, *prior_flags(vqvae_folder, tmp_path / "two", *common, "--train_batch_size", 16), processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = launch(STAGE2, *prior_flags(vqvae_folder, tmp_path / "one", *common, "--train_batch_size", 32))
    assert one.returncode == 0, one.stderr[-3000:]

    info, one_info = (json.loads((tmp_path / run / "training_info.json").read_text()) for run in ("two", "one"))
    assert info["num_processes"] == 2 and info["steps"] == one_info["steps"] == 12
    two_weights, one_weights = weights(tmp_path / "two"), weights(tmp_path / "one")
    for name in one_weights:
        assert torch.allclose(two_weights[name], one_weights[name], atol=1e-5, rtol=1e-4), name
    two_lr, one_lr = logged(tmp_path / "two", "lr"), logged(tmp_path / "one", "lr")
    assert sorted(one_lr) == list(range(1, 13)) and sorted(two_lr) == sorted(one_lr)
    for step in one_lr:
        assert two_lr[step] == pytest.approx(one_lr[step], rel=1e-6, abs=1e-12), step
    halfway = (warmup + 12) // 2  # half-way from the end of the warm-up to the last step
    assert one_lr[halfway] == pytest.approx(1.5e-3) and one_lr[12] == pytest.approx(0.0, abs=1e-12)
    name = "test/nll_bits_per_code"
    assert info["final_metrics"][name] == pytest.approx(one_info["final_metrics"][name], rel=1e-5)


@pytest.mark.slow
def test_bf16_on_cpu_trains_and_resumes(vqvae_folder, tmp_path):
    # Separate processes: Accelerate's state, mixed precision included, is set once per process.
    flags = ["--mixed_precision", "bf16", "--learning_rate", "1e-2", "--report_to", "tensorboard", "--max_train_steps", 24]
    straight = launch(STAGE2, *prior_flags(vqvae_folder, tmp_path / "straight", *flags, "--checkpointing_steps", 12))
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "\r" not in straight.stdout + straight.stderr and "pixelcnn: step 24/24" in straight.stderr
    assert any(line.startswith("epoch 0: test NLL") for line in straight.stdout.splitlines())
    info = json.loads((tmp_path / "straight" / "training_info.json").read_text())
    assert info["mixed_precision"] == "bf16"
    bits = logged(tmp_path / "straight", "train/nll_bits_per_code")
    assert bits[24] < bits[1] - 1.0, (bits[1], bits[24])  # from about log2(16) = 4 bits per code
    resumed = launch(STAGE2, *prior_flags(vqvae_folder, tmp_path / "resumed", *flags, "--resume_from_checkpoint",
                                          tmp_path / "straight" / "checkpoints" / "checkpoint-12"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = weights(tmp_path / "straight")
    for name, tensor in weights(tmp_path / "resumed").items():
        assert torch.equal(tensor, expected[name]), name


def test_a_run_resumed_from_its_final_checkpoint_trains_no_further(vqvae_folder, tmp_path):
    flags = ["--max_train_steps", 6, "--checkpointing_steps", 6, "--lr_scheduler", "constant"]
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", *flags))
    finished = weights(tmp_path / "prior")
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", *flags, "--resume_from_checkpoint", "latest"))
    assert json.loads((tmp_path / "prior" / "training_info.json").read_text())["steps"] == 6
    for name, tensor in weights(tmp_path / "prior").items():
        assert torch.equal(tensor, finished[name]), name


def test_a_run_resumed_without_learning_rate_keeps_its_own_and_ends_where_it_would_have(vqvae_folder, tmp_path, capsys):
    # A run started at 1e-3 (stage 2's default before 3e-3) and resumed by a version whose default differs.
    flags = ["--max_train_steps", 8, "--checkpointing_steps", 4, "--report_to", "tensorboard"]
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "straight", *flags, "--learning_rate", "1e-3"))
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "checkpoint-4", tmp_path / "resumed" / "checkpoints" / "checkpoint-4")
    capsys.readouterr()
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "resumed", *flags, "--resume_from_checkpoint", "latest"))
    assert "Continuing at the run's learning rate, 0.001" in capsys.readouterr().out
    expected = weights(tmp_path / "straight")
    for name, tensor in weights(tmp_path / "resumed").items():
        assert torch.equal(tensor, expected[name]), name
    assert json.loads((tmp_path / "resumed" / "training_info.json").read_text())["learning_rate"] == 1e-3
    # Given on the command line, even at this version's default, the flag replaces the run's rate.
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "resumed", "--max_train_steps", 10, "--checkpointing_steps", 4,
                                  "--resume_from_checkpoint", "latest", "--learning_rate", "3e-3"))
    assert "--learning_rate 0.003 replaces the run's 0.001" in capsys.readouterr().out
    assert json.loads((tmp_path / "resumed" / "training_info.json").read_text())["learning_rate"] == 3e-3


def test_resuming_with_another_prior_or_into_another_runs_folder_is_refused(vqvae_folder, tmp_path):
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 4, "--checkpointing_steps", 4))
    with pytest.raises(SystemExit, match="--num_layers is 3 here but 2 in the run of"):
        stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 8, "--num_layers", 3,
                                      "--resume_from_checkpoint", "latest"))
    with pytest.raises(SystemExit, match="already holds another run's checkpoints"):
        stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 8))


def test_resuming_compares_the_vqvaes_weights_not_how_its_path_is_spelt(vqvae_folder, tmp_path):
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 4, "--checkpointing_steps", 4))
    relative = tmp_path / "vqvae" / ".." / "vqvae"  # the same folder, spelt otherwise
    stage2_train.main(prior_flags(relative, tmp_path / "prior", "--max_train_steps", 6, "--resume_from_checkpoint", "latest"))
    assert json.loads((tmp_path / "prior" / "training_info.json").read_text())["steps"] == 6
    torch.manual_seed(1)  # the VQ-VAE retrained in place: the run's codes would change under it
    VQVAE(image_size=8, hidden_channels=[16, 32], num_embeddings=16, embedding_dim=8).save_pretrained(vqvae_folder)
    with pytest.raises(SystemExit, match=r"--vqvae .*/vqvae holds other weights than the run was trained on: point --vqvae "
                                         r"at the model it started with, or start a new --output_dir \(here sha256:.*, in "
                                         r"the run of .*checkpoint-4 sha256:"):
        stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 8, "--resume_from_checkpoint", "latest"))


def test_a_checkpoint_from_before_the_weights_were_recorded_resumes_and_still_compares_the_vqvae_flag(vqvae_folder, tmp_path):
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 4, "--checkpointing_steps", 4))
    checkpoint = tmp_path / "prior" / "checkpoints" / "checkpoint-4"
    run = json.loads((checkpoint / "run.json").read_text())  # as older versions wrote it: the flags as given
    del run["processes"], run["flags"]["vqvae (its weights)"]
    run["flags"].update(vqvae=str(vqvae_folder), vqvae_revision=None)
    (checkpoint / "run.json").write_text(json.dumps(run))
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"]["run.json"] = (checkpoint / "run.json").stat().st_size
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    other = tmp_path / "other_vqvae"
    torch.manual_seed(1)
    VQVAE(image_size=8, hidden_channels=[16, 32], num_embeddings=16, embedding_dim=8).save_pretrained(other)
    with pytest.raises(SystemExit, match=r"--vqvae is '.*other_vqvae' here but '.*/vqvae' in the run of"):
        stage2_train.main(prior_flags(other, tmp_path / "prior", "--max_train_steps", 6, "--resume_from_checkpoint", "latest"))
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 6, "--resume_from_checkpoint", "latest"))
    assert json.loads((tmp_path / "prior" / "training_info.json").read_text())["steps"] == 6


def test_a_runs_folder_moved_elsewhere_loads_its_prior_with_its_vqvae_and_refuses_another(vqvae_folder, tmp_path):
    stage2_train.main(prior_flags(vqvae_folder, tmp_path / "prior", "--max_train_steps", 4))
    before = from_pretrained(tmp_path / "prior").sample(4, seed=0)
    elsewhere = tmp_path / "elsewhere"  # `mv runs elsewhere`: the prior's config still names the old absolute path
    elsewhere.mkdir()
    for name in ("vqvae", "prior"):
        shutil.move(tmp_path / name, elsewhere / name)
    moved = from_pretrained(elsewhere / "prior")
    assert moved.prior.vqvae_id == str(elsewhere / "vqvae")
    assert torch.equal(moved.sample(4, seed=0), before)
    moved.prior.save_pretrained(tmp_path / "saved_again")  # it records where its VQ-VAE is now
    assert json.loads((tmp_path / "saved_again" / "config.json").read_text())["vqvae_id"] == str(elsewhere / "vqvae")
    loaded = load_models([str(elsewhere / "vqvae"), str(elsewhere / "prior")])  # the report's and the app's path
    assert list(loaded.groups) == ["vqvae"] and "PixelCNN" in loaded.groups["vqvae"].learned_priors

    def another_vqvae(folder):  # of the same shapes, other weights
        torch.manual_seed(1)
        VQVAE(image_size=8, hidden_channels=[16, 32], num_embeddings=16, embedding_dim=8).save_pretrained(folder)

    another_vqvae(vqvae_folder)  # another machine's run at the recorded path: the one beside the prior is still taken
    assert from_pretrained(elsewhere / "prior").prior.vqvae_id == str(elsewhere / "vqvae")
    another_vqvae(elsewhere / "vqvae")
    with pytest.raises(ValueError, match=r"its vqvae is not found: .*/vqvae holds other weights than the ones it was "
                                         r"trained on .*; .*/elsewhere/vqvae holds other weights"):
        from_pretrained(elsewhere / "prior")
    shutil.rmtree(vqvae_folder), shutil.rmtree(elsewhere / "vqvae")
    with pytest.raises(FileNotFoundError, match=r"its vqvae is not found: .*/vqvae does not exist; .*/elsewhere/vqvae "
                                                r"does not exist. Put the vqvae it was trained on at .* or beside the "
                                                r"prior as vqvae/, or point vqvae_id in its config.json at it.$"):
        from_pretrained(elsewhere / "prior")


def test_a_prior_given_the_dataset_by_flag_keeps_the_stage1_runs_test_split(tmp_path):
    # run_pipeline.sh named the dataset and --seed for stage 2: with a stage-1 split fixed apart from the seed
    # (--split_seed), the prior then trained on the stage-1 model's test images.
    from stage1_autoencoders.data import load_image_data
    from stage1_autoencoders.train import main as stage1_main
    from stage2_prior.stage1_runs import load_data_for

    stage1_main(["--model", "vqvae", "--dataset_name", "digits", "--hidden_channels", "8", "16", "--num_embeddings", "8",
                 "--max_train_steps", "2", "--seed", "3", "--split_seed", "0", "--output_dir", str(tmp_path / "vqvae")])
    vqvae = VQVAE.from_pretrained(str(tmp_path / "vqvae"))
    for flags, split_seed in ((["--dataset_name", "digits", "--seed", "3"], 0), (["--dataset_name", "digits", "--split_seed", "5"], 5), ([], 0)):
        args = stage2_train.parse_args(["--vqvae", str(tmp_path / "vqvae"), *flags])
        data = load_data_for(vqvae, args, str(tmp_path / "vqvae"), None)
        assert torch.equal(data.test_images, load_image_data("digits", seed=split_seed).test_images), flags
    # Without data flags the split is the recorded one: a --split_seed there would be ignored, so it is refused.
    args = stage2_train.parse_args(["--vqvae", str(tmp_path / "vqvae"), "--split_seed", "5"])
    with pytest.raises(SystemExit, match=r"^--split_seed 5 needs --dataset_name or --train_data_dir: .*Drop --split_seed"):
        load_data_for(vqvae, args, str(tmp_path / "vqvae"), None)
