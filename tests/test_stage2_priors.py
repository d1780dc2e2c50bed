"""Stage 2 end to end: code extraction and its cache, the PixelCNN trained by its script on real MNIST codes,
class-conditional sampling, decoding with either codebook kind, and the Gaussian mixture prior."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch
import torch
from accelerate import Accelerator
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture

from stage1_autoencoders import AE, VAE, VQVAE
from stage1_autoencoders import train as stage1_train
from stage1_autoencoders.data import load_image_data, to_float
from stage2_prior import fit_mixture
from stage2_prior import train as stage2_train
from stage2_prior.codes import extract_codes
from stage2_prior.mixture_prior import COVARIANCE_TYPES, MixturePrior
from stage2_prior.mixture_prior import sample_images as sample_mixture_images
from stage2_prior.pixelcnn import GatedPixelCNN
from stage2_prior.sampling import decode_codes, sample_codes, sample_images

MNIST_SUBSET = ["--max_train_samples", "6000", "--max_eval_samples", "1000"]


@pytest.fixture(scope="module")
def digits():
    return load_image_data("digits")


def small_vqvae(seed=0, **options) -> VQVAE:
    torch.manual_seed(seed)
    return VQVAE(image_size=8, hidden_channels=[16, 32], num_embeddings=16, embedding_dim=8, **options).eval()


def test_codes_are_encoded_once_cached_and_never_stale(digits, tmp_path):
    accelerator = Accelerator()
    vqvae, other = small_vqvae(), small_vqvae(seed=1)  # the same architecture, other weights
    with torch.no_grad():
        expected = vqvae.encode_to_indices(to_float(digits.test_images))
        expected_other = other.encode_to_indices(to_float(digits.test_images))
    first = extract_codes(vqvae, digits, accelerator, str(tmp_path), batch_size=100)
    assert not first.from_cache and os.path.isfile(first.cache_file)
    assert first.train_codes.shape == (len(digits.train_images), 2, 2) and first.train_codes.dtype == torch.long
    assert torch.equal(first.test_codes, expected)

    second = extract_codes(vqvae, digits, accelerator, str(tmp_path), batch_size=100)
    assert second.from_cache and second.cache_file == first.cache_file
    assert torch.equal(second.train_codes, first.train_codes) and torch.equal(second.test_codes, first.test_codes)

    third = extract_codes(other, digits, accelerator, str(tmp_path), batch_size=100)
    assert not third.from_cache and third.cache_file != first.cache_file
    assert torch.equal(third.test_codes, expected_other)
    # Other images (a subset) with the first VQ-VAE: not the first cache either.
    subset = load_image_data("digits", max_train_samples=100)
    assert not extract_codes(vqvae, subset, accelerator, str(tmp_path)).from_cache


@pytest.mark.parametrize("ema_decay", [0.0, 0.99])
def test_sampling_decodes_any_number_in_any_batch_size_with_either_codebook(ema_decay):
    vqvae = small_vqvae(ema_decay=ema_decay)
    prior = GatedPixelCNN(num_embeddings=16, grid_height=2, grid_width=2, hidden_channels=8, num_layers=2).eval()
    for num_samples, batch_size in [(1, 4), (7, 3), (6, 6)]:
        images = sample_images(prior, vqvae, num_samples, batch_size=batch_size, seed=0)
        assert images.shape == (num_samples, 1, 8, 8)
        assert images.min() >= 0 and images.max() <= 1
    codes = sample_codes(prior, 7, seed=0, batch_size=3)
    assert torch.equal(sample_images(prior, vqvae, 7, batch_size=3, seed=0), decode_codes(vqvae, codes, batch_size=3))
    wrong = GatedPixelCNN(num_embeddings=32, grid_height=2, grid_width=2, hidden_channels=8, num_layers=2)
    with pytest.raises(ValueError, match="VQ-VAE"):
        sample_images(wrong, vqvae, 2)


@pytest.fixture(scope="module")
def mnist_vqvae(mnist_path, tmp_path_factory):
    """A VQ-VAE trained briefly by the stage-1 script on 6,000 MNIST images."""
    folder = tmp_path_factory.mktemp("vqvae")
    stage1_train.main([
        "--model", "vqvae", "--hidden_channels", "16", "32", "--num_embeddings", "32", "--embedding_dim", "8",
        "--dataset_name", mnist_path, *MNIST_SUBSET, "--max_train_steps", "200", "--output_dir", str(folder),
    ])
    return str(folder)


@pytest.fixture(scope="module")
def mnist_prior(mnist_vqvae, tmp_path_factory):
    """A class-conditional PixelCNN trained briefly by the stage-2 script on the VQ-VAE's codes of those images."""
    folder = tmp_path_factory.mktemp("prior")
    stage2_train.main([
        "--vqvae", mnist_vqvae, *MNIST_SUBSET, "--hidden_channels", "32", "--num_layers", "5", "--conditional",
        "--max_train_steps", "300",
        "--output_dir", str(folder), "--codes_cache_dir", str(folder / "codes"),
    ])
    return str(folder)


@pytest.mark.slow
def test_prior_trained_on_mnist_codes_beats_the_uniform_and_unigram_priors(mnist_prior, mnist_vqvae):
    info = json.load(open(os.path.join(mnist_prior, "training_info.json")))
    test_bits = info["final_metrics"]["test/nll_bits_per_code"]
    assert info["final_metrics"]["uniform_prior_bits_per_code"] == math.log2(32)
    assert test_bits < math.log2(32)

    # Stronger: it beats coding each position with the codes' overall frequencies, so it uses the context.
    prior = GatedPixelCNN.from_pretrained(mnist_prior)
    assert prior.vqvae_id == os.path.abspath(mnist_vqvae)
    vqvae = VQVAE.from_pretrained(prior.vqvae_id)
    data = load_image_data(info["dataset"]["source"], max_train_samples=6000, max_test_samples=1000)
    with torch.no_grad():
        train_codes = vqvae.encode_to_indices(to_float(data.train_images))
        test_codes = vqvae.encode_to_indices(to_float(data.test_images))
        frequencies = torch.bincount(train_codes.flatten(), minlength=32).float().add(1).div(train_codes.numel() + 32)
        unigram_bits = -frequencies.log2()[test_codes].mean().item()
        assert prior.nll_bits_per_code(test_codes, data.test_labels).mean().item() == pytest.approx(test_bits, abs=1e-4)
    assert test_bits < unigram_bits - 0.3, f"PixelCNN {test_bits:.3f} bits/code vs unigram {unigram_bits:.3f}"


@pytest.mark.slow
def test_class_conditional_samples_are_classified_as_their_class(mnist_prior, mnist_vqvae, mnist_path):
    prior, vqvae = GatedPixelCNN.from_pretrained(mnist_prior), VQVAE.from_pretrained(mnist_vqvae)
    assert prior.num_classes == 10

    # A quick classifier of real MNIST digits (about 89% test accuracy).
    data = load_image_data(mnist_path, max_train_samples=6000, max_test_samples=1)
    classifier = LogisticRegression(max_iter=300).fit(to_float(data.train_images).flatten(1).numpy(), data.train_labels.numpy())
    labels = torch.arange(200) % 10
    images = sample_images(prior, vqvae, 200, seed=0, labels=labels)
    accuracy = (classifier.predict(images.flatten(1).numpy()) == labels.numpy()).mean()
    assert accuracy > 0.2, f"class-conditional samples classified as their class {accuracy:.0%} of the time (chance: 10%)"


def clustered_latents(n=600, dim=3, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[4.0, 0.0, 0.0], [-4.0, 1.0, 0.0], [0.0, -3.0, 2.0]])[:, :dim]
    return centres[torch.arange(n) % 3] + 0.5 * torch.randn(n, dim, generator=generator)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_mixture_prior_matches_sklearn_and_round_trips_through_save_and_load(covariance_type, tmp_path):
    latents = clustered_latents()
    prior = MixturePrior.fit(latents, n_components=3, covariance_type=covariance_type, seed=0,
                             autoencoder_id="someone/mnist-ae", autoencoder_revision="abc123")
    reference = GaussianMixture(3, covariance_type=covariance_type, max_iter=200, random_state=0).fit(latents.double().numpy())
    np.testing.assert_allclose(prior.log_prob(latents).numpy(), reference.score_samples(latents.double().numpy()), rtol=1e-4, atol=1e-4)

    prior.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["README.md", "config.json", "model.safetensors"]
    config = json.load(open(tmp_path / "config.json"))
    assert config["autoencoder_id"] == "someone/mnist-ae" and config["model_type"] == "gaussian_mixture_prior"
    loaded = MixturePrior.from_pretrained(tmp_path)
    assert torch.equal(loaded.covariances, prior.covariances) and torch.equal(loaded.weights, prior.weights)
    torch.testing.assert_close(loaded.log_prob(latents), prior.log_prob(latents), rtol=0, atol=0)
    assert torch.equal(loaded.sample(50, torch.Generator().manual_seed(1)), prior.sample(50, torch.Generator().manual_seed(1)))


def test_mixture_samples_follow_the_fitted_density():
    latents = clustered_latents(n=900)
    prior = MixturePrior.fit(latents, n_components=3)
    samples = prior.sample(3000, torch.Generator().manual_seed(0))
    assert samples.shape == (3000, 3) and samples.dtype == torch.float32
    torch.testing.assert_close(samples.mean(0), latents.mean(0), atol=0.15, rtol=0)
    # Samples sit where the data is: far likelier under the mixture than draws from a broad Gaussian.
    broad = 4 * torch.randn(3000, 3, generator=torch.Generator().manual_seed(0))
    assert prior.log_prob(samples).mean() > prior.log_prob(broad).mean() + 3


def test_fit_mixture_script_turns_an_autoencoder_into_a_generator(digits, tmp_path):
    torch.manual_seed(0)
    AE(image_size=8, hidden_channels=[16, 32], latent_dim=4).save_pretrained(tmp_path / "ae")
    output_dir = tmp_path / "gmm"
    fit_mixture.main(["--autoencoder", str(tmp_path / "ae"), "--dataset_name", "digits", "--n_components", "4",
                      "--output_dir", str(output_dir)])
    prior = MixturePrior.from_pretrained(output_dir)
    assert prior.autoencoder_id == str(tmp_path / "ae") and prior.n_components == 4 and prior.latent_dim == 4
    metrics = json.load(open(output_dir / "training_info.json"))["final_metrics"]
    assert metrics["test/latent_log_likelihood_mixture"] > metrics["test/latent_log_likelihood_standard_normal"]
    assert (output_dir / "samples.png").is_file() and (output_dir / "samples_standard_normal.png").is_file()
    ae = AE.from_pretrained(prior.autoencoder_id)
    images = sample_mixture_images(prior, ae, 5, seed=0, batch_size=2)
    assert images.shape == (5, 1, 8, 8)
    torch.testing.assert_close(images, sample_mixture_images(prior, ae, 5, seed=0))  # batching: float rounding only
    with pytest.raises(SystemExit, match="vqvae"):
        small_vqvae().save_pretrained(tmp_path / "vq")
        fit_mixture.main(["--autoencoder", str(tmp_path / "vq"), "--dataset_name", "digits", "--output_dir", str(output_dir)])


def test_vae_mixture_is_fitted_to_the_aggregate_posterior(digits):
    torch.manual_seed(0)
    vae = VAE(image_size=8, hidden_channels=[16, 32], latent_dim=4).eval()
    images = digits.train_images[:400]
    means = fit_mixture.latents_of(vae, images, 128, "means", fit_to="means")
    draws = fit_mixture.latents_of(vae, images, 128, "draws", seed=3)
    torch.testing.assert_close(draws, fit_mixture.latents_of(vae, images, 64, "draws", seed=3))  # seeded, any batching
    # One draw per image from N(mean, exp(logvar)): its spread is the means' spread plus the posterior variance.
    with torch.no_grad():
        posterior_variance = vae.encode(to_float(images))[1].exp().mean(0)
    torch.testing.assert_close(draws.var(0), means.var(0) + posterior_variance, rtol=0.2, atol=0.0)
    assert not torch.allclose(draws, means)
    ae = AE(image_size=8, hidden_channels=[16, 32], latent_dim=4).eval()  # no posterior: its latents either way
    torch.testing.assert_close(fit_mixture.latents_of(ae, images, 128, "ae"), fit_mixture.latents_of(ae, images, 128, "ae", fit_to="means"))


def digits_prior_flags(vqvae_folder, output_dir, *flags: str) -> list[str]:
    return ["--vqvae", str(vqvae_folder), "--dataset_name", "digits", "--hidden_channels", "8", "--num_layers", "2",
            "--codes_cache_dir", str(output_dir.parent / "codes"),
            "--output_dir", str(output_dir), *flags]


def test_training_resumed_from_a_checkpoint_ends_where_an_uninterrupted_run_does(tmp_path):
    # With --use_ema: the weight average, saved in the checkpoint, is resumed too (bf16's resume test runs without).
    small_vqvae().save_pretrained(tmp_path / "vqvae")
    # The default cosine schedule over 12 steps: the run stopped after step 7 holds only its checkpoint-7.
    flags = ["--max_train_steps", "12", "--checkpointing_steps", "7", "--use_ema"]
    stage2_train.main(digits_prior_flags(tmp_path / "vqvae", tmp_path / "straight", *flags))
    interrupted = tmp_path / "interrupted"
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "checkpoint-7", interrupted / "checkpoints" / "checkpoint-7")
    stage2_train.main(digits_prior_flags(tmp_path / "vqvae", interrupted, *flags, "--resume_from_checkpoint", "latest"))
    info = json.load(open(interrupted / "training_info.json"))
    assert info["steps"] == 12 and info["codes_from_cache"]
    straight, resumed = GatedPixelCNN.from_pretrained(tmp_path / "straight"), GatedPixelCNN.from_pretrained(interrupted)
    for (name, expected), actual in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(actual, expected, msg=f"{name} differs after resuming")
    with pytest.raises(SystemExit, match="Resume with the flags the run started with"):
        stage2_train.main(digits_prior_flags(tmp_path / "vqvae", interrupted, "--max_train_steps", "12", "--conditional",
                                             "--use_ema", "--resume_from_checkpoint", "latest"))


@pytest.mark.slow
def test_two_processes_encode_their_shards_and_train_one_prior(digits, tmp_path):
    vqvae = small_vqvae()
    vqvae.save_pretrained(tmp_path / "vqvae")
    output_dir = tmp_path / "prior"
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stage2_prior", "train.py")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
               "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", script,
               *digits_prior_flags(tmp_path / "vqvae", output_dir, "--max_train_steps", "6", "--encode_batch_size", "100",
                                   "--eval_batch_size", "64")]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]

    info = json.load(open(output_dir / "training_info.json"))
    assert info["num_processes"] == 2
    # The gathered codes are every image's, in order, exactly once (the last, padded batch included).
    cached = safetensors.torch.load_file(info["codes_cache_file"])
    with torch.no_grad():
        test_codes = vqvae.encode_to_indices(to_float(digits.test_images))
        assert torch.equal(cached["train_codes"].long(), vqvae.encode_to_indices(to_float(digits.train_images)))
        assert torch.equal(cached["test_codes"].long(), test_codes)
        # The test NLL reduced across ranks is the single-process NLL of the saved prior.
        nll = GatedPixelCNN.from_pretrained(output_dir).nll_bits_per_code(test_codes).mean().item()
    assert info["final_metrics"]["test/nll_bits_per_code"] == pytest.approx(nll, abs=1e-5)
