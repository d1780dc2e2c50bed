"""Pushing to and loading from the Hub, for every model the project has, through the real huggingface_hub client.

No machine here reaches the Hub: tests/local_hub.py serves a stand-in for it on 127.0.0.1 and HF_ENDPOINT points
at it, so the real push (create_repo, preupload, commit) and the real download (hf_hub_download) run end to end.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from local_hub import local_hub  # noqa: F401  (the fixture)
from PIL import Image
from torchvision.utils import save_image

from evaluation.report import write_report
from hub import HubModel, TwoStageGenerator, from_pretrained
from hub.auto import MODELS, import_object, model_class
from hub.files import pinned_reference
from hub.push import push_checkpoint, push_run_folder
from stage1_autoencoders import AE, VQVAE, BetaVAE
from stage1_autoencoders.data import load_image_data, to_float
from stage2_prior.mixture_prior import MixturePrior
from stage2_prior.mixture_prior import sample_images as sample_mixture
from stage2_prior.sampling import sample_images

REPO = Path(__file__).resolve().parents[1]
USER = "local-user"  # the local hub's user, the owner of its token
SMALL = dict(image_size=8, hidden_channels=[16, 32])  # digits are 8x8
CONFIGS = {
    "ae": dict(SMALL, latent_dim=4),
    "vae": dict(SMALL, latent_dim=4),
    "beta_vae": dict(SMALL, latent_dim=4, beta=2.0),
    "vqvae": dict(SMALL, num_embeddings=16, embedding_dim=8),
    "classifier": dict(image_size=8, hidden_channels=[16], num_classes=10, feature_dim=32),
    "gated_pixelcnn": dict(num_embeddings=16, grid_height=2, grid_width=2, hidden_channels=16, num_layers=2),
    "gaussian_mixture_prior": dict(n_components=3, covariance_type="full"),
    "vamp_vae": dict(SMALL, latent_dim=4, num_pseudo_inputs=5),
    "flow_prior": dict(latent_dim=4, flow="nsf", transforms=2, hidden_features=[16, 16]),
    "two_stage_vae_prior": dict(latent_dim=4, hidden_features=[16]),
}
TRAIN_STEPS = 2


def model_outputs(model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each kind of model computes for fixed inputs and a fixed seed; compared across processes."""
    with torch.no_grad():
        if isinstance(model, TwoStageGenerator):
            if model.prior.model_type == "gated_pixelcnn":
                score = model.prior.nll_bits_per_code(model.decoder.encode_to_indices(images))
            elif hasattr(model.prior, "log_prob"):
                score = model.prior.log_prob(model.decoder.embed(images))
            else:  # the two-stage VAE has no exact density: its samples alone
                return {"samples": model.sample(4, seed=0)}
            return {"samples": model.sample(4, seed=0), "score": score}
        if model.model_type == "classifier":
            return {"logits": model(images)}
        outputs = {"reconstruction": model.reconstruct(images), "embedding": model.embed(images)}
        if hasattr(model, "sample"):
            outputs["samples"] = model.sample(4, generator=torch.Generator().manual_seed(0))
        if hasattr(model, "sample_uniform"):
            outputs["samples"] = model.sample_uniform(4, generator=torch.Generator().manual_seed(0))
        return outputs


def train_briefly(model, loss_of_batch, data, steps: int = TRAIN_STEPS, seed: int = 0):
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    order = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(seed))
    model.train()
    for batch in order[: steps * 64].split(64):
        loss = loss_of_batch(model, to_float(data.train_images[batch]), data.train_labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def write_run(model, folder: Path, data, samples: torch.Tensor, final_metrics: dict):
    """A run folder as the training scripts leave it: the model, training_info.json, samples.png."""
    model.save_pretrained(folder)
    info = {"dataset": data.info, "steps": TRAIN_STEPS, "train_batch_size_per_device": 64, "num_processes": 1,
            "device": "cpu", "wall_time_seconds": 1.0, "final_metrics": final_metrics}
    (folder / "training_info.json").write_text(json.dumps(info))
    save_image(samples, folder / "samples.png", nrow=4)
    return folder


def write_evaluation_report(folder: Path, vqvae_source: str, prior_source: str, nll: float) -> Path:
    """A report as evaluation/report.py writes it, with the VQ-VAE's rows: uniform codes and the PixelCNN prior."""
    setup = {"command": "python -m evaluation.evaluate ...", "dataset": "digits", "num_test_images": 180,
             "num_samples": 16, "seed": 0, "feature_extractor": "twostage classifier", "num_importance_samples": 1,
             "feature_extractor_weights_path": "classifier"}
    rows = [{"model": "vqvae", "prior": "uniform", "nll": math.log2(CONFIGS["vqvae"]["num_embeddings"]),
             "nll_unit": "bits/code"},
            {"model": "vqvae", "prior": "gated PixelCNN", "prior_source": prior_source, "nll": nll, "nll_unit": "bits/code"}]
    models = {"vqvae": {"model_type": "vqvae", "source": vqvae_source, "metrics": {}, "figures": {}}}
    write_report({"setup": setup, "real_test_split": {"is": 9.0, "is_std": 0.1}, "rows": rows, "models": models}, folder)
    return folder


def autoencoder_loss(model, images, labels):
    return model(images).loss


def classifier_loss(model, images, labels):
    return F.cross_entropy(model(images), labels)


def run_in_subprocess(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def digits():
    return load_image_data("digits")


@pytest.fixture(scope="module")
def pushed(local_hub, digits, tmp_path_factory):  # noqa: F811
    """Every model class trained for a few steps and pushed as a run folder.
    model_type -> (repo id, the model as pushed (a TwoStageGenerator for priors), the push's commit)."""
    runs = tmp_path_factory.mktemp("runs")
    test_images = to_float(digits.test_images[:8])
    pushed = {}
    for model_type in ("ae", "vae", "beta_vae", "vqvae", "vamp_vae", "classifier"):
        model = model_class(model_type)(**CONFIGS[model_type])
        loss = classifier_loss if model_type == "classifier" else autoencoder_loss
        train_briefly(model, loss, digits)
        with torch.no_grad():
            samples = test_images if model_type == "classifier" else model.reconstruct(test_images)
            test_loss = float(loss(model, test_images, digits.test_labels[:8]))
        folder = write_run(model, runs / model_type, digits, samples, {"test/loss": test_loss})
        repo_id = f"{USER}/digits-{model_type}"
        commit = push_run_folder(folder, repo_id)
        pushed[model_type] = (repo_id, model, commit)

    # The prior learns the codes of the VQ-VAE as pushed, and names it with the commit it was pushed at.
    vqvae_repo, vqvae, vqvae_commit = pushed["vqvae"]
    vqvae_id, vqvae_revision = pinned_reference(vqvae_repo)  # as the stage-2 training script records its VQ-VAE
    assert (vqvae_id, vqvae_revision) == (vqvae_repo, vqvae_commit.oid)
    prior = model_class("gated_pixelcnn")(**CONFIGS["gated_pixelcnn"], vqvae_id=vqvae_id, vqvae_revision=vqvae_revision)

    def prior_loss(model, images, labels):
        codes = vqvae.encode_to_indices(images)
        return F.cross_entropy(model(codes), codes)

    train_briefly(prior, prior_loss, digits)
    generator = TwoStageGenerator(prior, copy.deepcopy(vqvae), sample_images)
    with torch.no_grad():
        test_nll = float(prior.nll_bits_per_code(vqvae.encode_to_indices(to_float(digits.test_images))).mean())
    folder = write_run(prior, runs / "pixelcnn", digits, generator.sample(16, seed=0), {})
    prior_repo = f"{USER}/digits-vqvae-pixelcnn"
    report = write_evaluation_report(runs / "report", vqvae_repo, str(folder), test_nll)
    pushed["gated_pixelcnn"] = (prior_repo, generator, push_run_folder(folder, prior_repo, report=report))

    # A Gaussian mixture fitted to the VAE's latents, naming the VAE as pushed.
    vae_repo, vae, _ = pushed["vae"]
    with torch.no_grad():
        latents = vae.embed(to_float(digits.train_images))
    vae_id, vae_revision = pinned_reference(vae_repo)
    mixture = MixturePrior.fit(latents, **CONFIGS["gaussian_mixture_prior"], seed=0, max_iter=20,
                               autoencoder_id=vae_id, autoencoder_revision=vae_revision)
    mixture_generator = TwoStageGenerator(mixture, vae, sample_mixture)
    with torch.no_grad():
        test_log_likelihood = float(mixture.log_prob(vae.embed(test_images)).mean())
    folder = write_run(mixture, runs / "mixture", digits, mixture_generator.sample(16, seed=0),
                       {"test/latent_log_likelihood_mixture": test_log_likelihood})
    mixture_repo = f"{USER}/digits-vae-mixture"
    pushed["gaussian_mixture_prior"] = (mixture_repo, mixture_generator, push_run_folder(folder, mixture_repo))

    # A flow and a two-stage VAE trained briefly on the VAE's aggregate posterior, naming the VAE as pushed.
    for model_type in ("flow_prior", "two_stage_vae_prior"):
        latent_prior = model_class(model_type)(**CONFIGS[model_type], autoencoder_id=vae_id, autoencoder_revision=vae_revision)
        train_briefly(latent_prior, lambda model, images, labels: model(vae.sample_posterior(images)).mean(), digits)
        latent_generator = TwoStageGenerator(latent_prior, vae, import_object(MODELS[model_type].sampler))
        folder = write_run(latent_prior, runs / model_type, digits, latent_generator.sample(16, seed=0), {})
        repo_id = f"{USER}/digits-vae-{model_type}"
        pushed[model_type] = (repo_id, latent_generator, push_run_folder(folder, repo_id))

    # The VQ-VAE's repo moves on after the prior was trained: the prior must still load the revision it names.
    train_briefly(vqvae, autoencoder_loss, digits, steps=1, seed=1)
    with torch.no_grad():
        write_run(vqvae, runs / "vqvae", digits, vqvae.reconstruct(test_images), {"test/loss": float(vqvae(test_images).loss)})
    push_run_folder(runs / "vqvae", vqvae_repo)
    return pushed


def test_every_model_type_is_covered_and_registered_consistently(pushed):
    assert set(pushed) == set(MODELS), "a model type was added to hub.auto.MODELS without a round-trip test here"
    for model_type, entry in MODELS.items():
        assert import_object(entry.model_class).model_type == model_type


def test_round_trip_in_a_fresh_process_gives_identical_outputs(pushed, local_hub, digits, tmp_path):  # noqa: F811
    images = to_float(digits.test_images[:8])
    safetensors.torch.save_file({"images": images}, tmp_path / "inputs.safetensors")
    repos = {model_type: repo_id for model_type, (repo_id, _, _) in pushed.items()}
    code = f"""
import json, os, safetensors.torch, torch
torch.set_num_threads({torch.get_num_threads()})
from hub import from_pretrained
from test_hub import model_outputs
images = safetensors.torch.load_file("inputs.safetensors")["images"]
for model_type, repo_id in json.loads({json.dumps(json.dumps(repos))}).items():
    outputs = model_outputs(from_pretrained(repo_id), images)
    safetensors.torch.save_file({{k: v.contiguous() for k, v in outputs.items()}}, f"{{model_type}}.safetensors")
"""
    run_in_subprocess(code, local_hub.env, tmp_path)
    for model_type, (repo_id, model, _) in pushed.items():
        expected = model_outputs(model, images)
        loaded = safetensors.torch.load_file(tmp_path / f"{model_type}.safetensors")
        assert loaded.keys() == expected.keys()
        for name, tensor in expected.items():
            assert torch.equal(loaded[name], tensor), f"{repo_id}: {name} differs after the round trip"


def test_prior_loads_with_its_vqvae_at_the_pinned_revision(pushed):
    repo_id, expected, _ = pushed["gated_pixelcnn"]
    generator = from_pretrained(repo_id)
    assert isinstance(generator, TwoStageGenerator) and generator.decoder.model_type == "vqvae"
    assert generator.prior.vqvae_revision == pushed["vqvae"][2].oid
    latest = from_pretrained(pushed["vqvae"][0])  # main has moved on since the prior was pushed
    assert not torch.equal(latest.quantizer.codebook, generator.decoder.quantizer.codebook)
    assert torch.equal(generator.decoder.quantizer.codebook, expected.decoder.quantizer.codebook)


def test_pixelcnn_model_card_is_valid_and_shows_its_samples_and_scores(pushed, local_hub):  # noqa: F811
    repo_id, _, _ = pushed["gated_pixelcnn"]
    vqvae_repo = pushed["vqvae"][0]
    card = ModelCard.load(repo_id)  # downloaded through the hub, parsed by huggingface_hub
    assert card.data.library_name == "twostage"
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert card.data.base_model == vqvae_repo
    assert {"twostage", "gated_pixelcnn", "pixelcnn", "digits"} <= set(card.data.tags)
    nll = [r for r in card.data.eval_results if r.metric_type == "nll"]
    assert len(nll) == 1 and 0 < nll[0].metric_value < math.log2(CONFIGS["vqvae"]["num_embeddings"]) + 1
    assert "| vqvae | gated PixelCNN |" in card.text and "| vqvae | uniform |" not in card.text  # its own report row
    for fact in ("gated PixelCNN", "2×2 grid of 16 VQ-VAE codes", "2 layers of 16 channels", vqvae_repo, "digits"):
        assert fact in card.text

    assert "![samples](samples.png)" in card.text
    files = local_hub.server.files(repo_id)
    assert Image.open(io.BytesIO(files["samples.png"])).size[0] > 8
    assert {"config.json", "model.safetensors", "README.md", "training_info.json"} <= files.keys()

    snippet = re.search(r"```python\n(.*?)```", card.text, re.DOTALL).group(1)
    assert f'generator = from_pretrained("{repo_id}")' in snippet and "generator.sample(16, seed=0)" in snippet
    # The snippet runs (with every other card's) in test_every_card_has_metadata_scores_and_a_snippet_that_runs.


def test_every_card_has_metadata_scores_and_a_snippet_that_runs(pushed, local_hub, tmp_path):  # noqa: F811
    snippets = {}
    for model_type, (repo_id, _, _) in pushed.items():
        card = ModelCard.load(repo_id)
        expected_task = "image-classification" if model_type == "classifier" else "unconditional-image-generation"
        assert (card.data.library_name, card.data.pipeline_tag) == ("twostage", expected_task)
        assert model_type in card.data.tags and "## How it was trained" in card.text
        decoder = MODELS[model_type].decoder
        if decoder:  # a prior links to the stage-1 model that decodes its samples
            assert card.data.base_model == pushed[{"vqvae": "vqvae", "autoencoder": "vae"}[decoder]][0]
        else:  # the test-split metric recorded by training
            assert [r.metric_type for r in card.data.eval_results] == ["test_loss"]
        snippets[model_type] = re.search(r"```python\n(.*?)```", card.text, re.DOTALL).group(1)
    code = f"""
import json, os
for model_type, snippet in json.loads({json.dumps(json.dumps(snippets))}).items():
    exec(snippet, {{}})
    os.rename("samples.png", model_type + ".png")
"""
    run_in_subprocess(code, local_hub.env, tmp_path)
    for model_type in pushed:
        assert Image.open(tmp_path / f"{model_type}.png").size[0] > 8, f"{model_type}'s snippet made no image grid"


def test_push_to_hub_of_the_mixin_writes_the_same_files(local_hub):  # noqa: F811
    model = VQVAE(**CONFIGS["vqvae"])
    model.push_to_hub(f"{USER}/mixin-vqvae")  # huggingface_hub's upload_folder, hf_xet's pipeline when installed
    assert sorted(local_hub.server.files(f"{USER}/mixin-vqvae")) == ["README.md", "config.json", "model.safetensors"]
    assert 'from_pretrained("local-user/mixin-vqvae")' in ModelCard.load(f"{USER}/mixin-vqvae").text
    loaded = from_pretrained(f"{USER}/mixin-vqvae")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_cli_pushes_a_private_repo_without_leaking_the_token(pushed, local_hub, digits, tmp_path):  # noqa: F811
    folder = write_run(AE(**CONFIGS["ae"]), tmp_path / "ae", digits, torch.zeros(4, 1, 8, 8), {})
    repo_id = f"{USER}/private-ae"
    result = subprocess.run(
        [sys.executable, "-m", "hub.push", str(folder), "--hub_model_id", repo_id, "--private"],
        env=local_hub.env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert repo_id in result.stdout
    assert local_hub.token not in result.stdout + result.stderr
    assert all(local_hub.token.encode() not in data for data in local_hub.server.files(repo_id).values())
    assert HfApi().model_info(repo_id).private
    assert isinstance(from_pretrained(repo_id), AE)
    with pytest.raises(RepositoryNotFoundError):
        AE.from_pretrained(repo_id, token=False, cache_dir=tmp_path / "empty-cache")  # a private repo needs the token


def test_training_script_pushes_the_model_and_its_checkpoints(local_hub, tmp_path):  # noqa: F811
    repo_id = f"{USER}/trained-vae"
    command = [
        sys.executable, str(REPO / "stage1_autoencoders" / "train.py"), "--model", "vae", "--hidden_channels", "16", "32",
        "--latent_dim", "4", "--max_train_steps", "2", "--checkpointing_steps", "1", "--checkpoints_total_limit", "1",
        "--max_eval_samples", "64", "--output_dir", str(tmp_path / "run"),
        "--push_to_hub", "--hub_model_id", repo_id, "--hub_private", "--push_checkpoints_to_hub",
    ]
    result = subprocess.run(command, env=local_hub.env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert local_hub.token not in result.stdout + result.stderr
    files = local_hub.server.files(repo_id)
    assert {"config.json", "model.safetensors", "README.md", "samples.png", "training_info.json"} <= files.keys()
    assert {path.split("/")[1] for path in files if path.startswith("checkpoints/")} == {"checkpoint-2"}
    assert "Trained on **digits** for 2 steps" in files["README.md"].decode()
    assert HfApi().model_info(repo_id).private


def test_push_works_without_xet(local_hub, digits, tmp_path, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    model = AE(**CONFIGS["ae"])
    folder = write_run(model, tmp_path / "ae", digits, torch.zeros(4, 1, 8, 8), {})
    push_run_folder(folder, f"{USER}/no-xet-ae")
    loaded = from_pretrained(f"{USER}/no-xet-ae")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_checkpoints_are_pushed_and_pruned_as_locally(local_hub, tmp_path):  # noqa: F811
    checkpoints = tmp_path / "checkpoints"
    for step in (2, 4):
        AE(**CONFIGS["ae"]).save_pretrained(checkpoints / f"checkpoint-{step}")
        (checkpoints / f"checkpoint-{step}" / "step.txt").write_text(str(step))
        if step == 4:  # as --checkpoints_total_limit 1 does once checkpoint-4 is complete
            shutil.rmtree(checkpoints / "checkpoint-2")
        push_checkpoint(checkpoints / f"checkpoint-{step}", f"{USER}/with-checkpoints")
    files = local_hub.server.files(f"{USER}/with-checkpoints")
    assert sorted(files) == [f"checkpoints/checkpoint-4/{name}" for name in ("README.md", "config.json", "model.safetensors", "step.txt")]
    with pytest.raises(FileNotFoundError, match="no checkpoint there"):
        push_checkpoint(checkpoints / "checkpoint-6", f"{USER}/with-checkpoints")


class Tiny(HubModel):
    """A model outside hub.auto's registry, as a downstream user or a test might write one."""

    model_type = "tiny"

    def __init__(self, width: int = 3, depth: int = 1):
        super().__init__()
        self.layers = torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(depth)))


def test_any_hubmodel_round_trips_through_the_local_hub(local_hub):  # noqa: F811
    api = HfApi()
    assert api.whoami()["name"] == USER
    with pytest.raises(HfHubHTTPError, match="Invalid user token"):
        api.whoami(token="hf_wrong")
    model = Tiny(width=4, depth=2)
    model.push_to_hub(f"{USER}/tiny")
    assert {entry.path for entry in api.list_repo_tree(f"{USER}/tiny")} == {"README.md", "config.json", "model.safetensors"}
    loaded = Tiny.from_pretrained(f"{USER}/tiny")
    assert (loaded.layers[1].in_features, len(loaded.layers)) == (4, 2)
    assert torch.equal(loaded.layers[1].weight, model.layers[1].weight)
    with pytest.raises(ValueError, match="unknown model_type 'tiny'"):
        from_pretrained(f"{USER}/tiny")  # the Auto loader knows the project's models only


# --- bad input: each case gets an error that names the problem ---


def test_a_config_of_another_model_type_is_refused(pushed):
    with pytest.raises(ValueError, match=r"holds a 'vqvae' model .*not a 'ae' \(AE\)"):
        AE.from_pretrained(pushed["vqvae"][0])


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    AE(**CONFIGS["ae"]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "latent_dim": 6}))
    with pytest.raises(ValueError, match=r"does not match the AE .*shape mismatches .*to_latent.weight"):
        AE.from_pretrained(tmp_path)

    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = safetensors.torch.load_file(tmp_path / "model.safetensors")
    del weights["decoder.layers.2.weight"]
    safetensors.torch.save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing \['decoder.layers.2.weight'\]"):
        AE.from_pretrained(tmp_path)

    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        AE.from_pretrained(tmp_path)


def test_a_repo_with_no_weights_or_no_config_is_refused(local_hub, tmp_path):  # noqa: F811
    api = HfApi()
    api.create_repo(f"{USER}/config-only")
    AE(**CONFIGS["ae"]).save_pretrained(tmp_path)
    api.upload_file(path_or_fileobj=tmp_path / "config.json", path_in_repo="config.json", repo_id=f"{USER}/config-only")
    with pytest.raises(FileNotFoundError, match="has no model.safetensors, so there are no weights"):
        from_pretrained(f"{USER}/config-only")

    api.create_repo(f"{USER}/weights-only")
    api.upload_file(path_or_fileobj=tmp_path / "model.safetensors", path_in_repo="model.safetensors", repo_id=f"{USER}/weights-only")
    with pytest.raises(FileNotFoundError, match="has no config.json, so it is not a twostage model"):
        AE.from_pretrained(f"{USER}/weights-only")

    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="the folder has no model.safetensors"):
        AE.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        from_pretrained(str(tmp_path / "missing-run"))


def test_a_config_from_an_older_version_loads_with_defaults(tmp_path):
    model = BetaVAE(**CONFIGS["beta_vae"], capacity_max=5.0)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "beta_vae" and config["twostage_version"]
    # As written before model_type, twostage_version and the capacity options existed:
    old = {k: v for k, v in config.items() if k not in ("model_type", "twostage_version", "capacity_max", "capacity_steps")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = BetaVAE.from_pretrained(tmp_path)
    assert loaded.capacity_max == 0.0 and loaded.beta == 2.0  # the default, and the recorded value
    with pytest.raises(ValueError, match=r"config.json has no model_type .*Load it with the class itself"):
        from_pretrained(tmp_path)

    (tmp_path / "config.json").write_text(json.dumps({**config, "added_in_a_later_version": 1}))
    with pytest.warns(UserWarning, match=r"does not take: \['added_in_a_later_version'\]"):
        BetaVAE.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "diffusion"}))
    with pytest.raises(ValueError, match="unknown model_type 'diffusion'"):
        from_pretrained(tmp_path)


def test_push_refuses_a_broken_run_or_a_prior_naming_a_local_vqvae(local_hub, tmp_path):  # noqa: F811
    VQVAE(**CONFIGS["vqvae"]).save_pretrained(tmp_path / "vqvae")
    (tmp_path / "vqvae" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        push_run_folder(tmp_path / "vqvae", f"{USER}/broken")
    assert not HfApi().repo_exists(f"{USER}/broken"), "nothing is sent before the run folder is checked"

    prior = model_class("gated_pixelcnn")(**CONFIGS["gated_pixelcnn"], vqvae_id=str(tmp_path / "vqvae"))
    prior.save_pretrained(tmp_path / "prior")
    with pytest.raises(ValueError, match="names its vqvae by the local folder"):
        push_run_folder(tmp_path / "prior", f"{USER}/prior")


# --- last: what every test of this module pushed ---


def test_pushed_files_hold_no_local_paths_and_weights_go_through_lfs(pushed, local_hub, digits, tmp_path):  # noqa: F811
    # A run whose records name local paths, as the stage-2 script's codes cache and a local dataset folder do.
    folder = write_run(AE(**CONFIGS["ae"]), tmp_path / "ae", digits, torch.zeros(4, 1, 8, 8), {})
    info = json.loads((folder / "training_info.json").read_text())
    info.update(dataset={"source": str(tmp_path / "data" / "mnist")}, codes_cache_file=str(tmp_path / "codes" / "c.pt"),
                train_data_dir=f"imagefolder:{tmp_path / 'images'}")
    (folder / "training_info.json").write_text(json.dumps(info))
    push_run_folder(folder, f"{USER}/paths-ae")
    pushed_info = json.loads(local_hub.server.files(f"{USER}/paths-ae")["training_info.json"])
    assert pushed_info["dataset"]["source"] == "local:mnist" and pushed_info["codes_cache_file"] == "local:c.pt"

    local_places = {str(tmp_path.parents[1]), str(REPO), os.path.expanduser("~"), os.getcwd(), "/tmp/"}
    for (_, repo_id), repo in local_hub.server.repos.items():
        for path, data in repo.resolve("main").files.items():
            text = data.decode("latin-1")
            leaks = [place for place in local_places if place in text]
            assert not leaks, f"{repo_id}/{path} names local paths {leaks}"
    for repo_id, _, _ in pushed.values():  # the weights went through the LFS batch API, the config inline
        assert (repo_id, "model.safetensors") in local_hub.server.lfs_uploads
        assert (repo_id, "config.json") not in local_hub.server.lfs_uploads
    assert (f"{USER}/digits-vqvae-pixelcnn", "samples.png") in local_hub.server.lfs_uploads  # binary: LFS too
    lfs_entry = HfApi().get_paths_info(f"{USER}/digits-vqvae", ["model.safetensors"])[0].lfs
    assert lfs_entry.sha256 == hashlib.sha256(local_hub.server.files(f"{USER}/digits-vqvae")["model.safetensors"]).hexdigest()
