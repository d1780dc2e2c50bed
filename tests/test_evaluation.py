"""Evaluation: the classifier's IS on real and noise images, FID's behaviour, the Inception-v3 path, likelihood
estimators, and the report's agreement between REPORT.md and report.json.

The MNIST classifier is trained once per machine (cached under $TWOSTAGE_CACHE or ~/.cache/twostage), about a
minute on 2 CPU cores the first time.
"""

import json
import math
import os
import re

import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

import torch_fidelity

from evaluation.kid import kernel_inception_distance
from evaluation.precision_recall import neighbourhood_radii, precision_recall
from evaluation.fidelity import INCEPTION, ImageTensorDataset, Judge, fidelity_metrics, inception_score, inception_weights
from evaluation import likelihood
from evaluation.likelihood import codebook_statistics, vae_likelihoods
from evaluation.report import COLUMNS, parse_table
from evaluation.train_classifier import classifier_cache_name, trained_classifier_folder
from stage1_autoencoders import VAE, VQVAE, AE
from stage1_autoencoders.data import load_image_data, to_float
from stage1_autoencoders.likelihoods import gaussian_kl, reconstruction_nll
from stage2_prior import GatedPixelCNN, MixturePrior


@pytest.fixture(scope="session")
def mnist(mnist_path):
    """The real MNIST test split (the train split is decoded only where the classifier must be trained)."""
    return load_image_data(mnist_path, max_train_samples=1)


@pytest.fixture(scope="session")
def mnist_classifier(mnist_path) -> str:
    return trained_classifier_folder(mnist_path)


def test_classifier_reaches_99_percent_on_mnist(mnist_classifier):
    with open(os.path.join(mnist_classifier, "training_info.json")) as file:
        info = json.load(file)
    assert info["num_test"] == 10_000
    assert info["test_accuracy"] >= 0.99


def test_inception_score_of_real_mnist_test_split_is_above_9(mnist, mnist_classifier):
    score, _ = inception_score(mnist.test_images, feature_extractor_weights_path=mnist_classifier)
    assert score > 9.0  # 10 classes, about 10 images each, per split of 100: a perfect classifier scores about 9.6


def test_inception_score_of_real_mnist_does_not_depend_on_how_many_are_scored(mnist, mnist_classifier):
    """Splits of a fixed size: 100, 1,000 and 10,000 real images score alike (at 10 splits each, about 6 against 9.6)."""
    scores = [inception_score(mnist.test_images[:count], feature_extractor_weights_path=mnist_classifier)[0]
              for count in (100, 1_000, 10_000)]
    assert max(scores) < 1.05 * min(scores), scores


def test_scores_from_too_few_samples_are_withheld_with_the_reason(mnist, mnist_classifier):
    real = mnist.test_images[:1000]
    scores = fidelity_metrics(real[:100], real, metrics=("isc", "fid", "kid"), feature_extractor_weights_path=mnist_classifier)
    assert scores["fid"] is None and scores["withheld"]["fid"].startswith("FID from 100 samples in 128 feature dimensions")
    assert scores["is"] > 8 and scores["kid"] is not None and scores["is_splits"] == 1
    few = fidelity_metrics(real[:50], metrics=("isc",), feature_extractor_weights_path=mnist_classifier)
    assert few["is"] is None and few["is_std"] is None
    assert few["withheld"]["is"] == "50 samples are fewer than one IS split of 100; score at least 100"
    small_splits = fidelity_metrics(real, metrics=("isc",), feature_extractor_weights_path=mnist_classifier, is_split_size=5)
    assert small_splits["is"] is None and "smaller than the classifier's 10 classes" in small_splits["withheld"]["is"]
    enough = fidelity_metrics(real[:200], real, metrics=("fid",), feature_extractor_weights_path=mnist_classifier)
    assert enough["fid"] > 0 and enough["withheld"] == {}


def test_a_judge_gives_torch_fidelitys_own_numbers_from_features_extracted_once(mnist, mnist_classifier, monkeypatch):
    real, generated = mnist.test_images[:1000], mnist.test_images[1000:1300].flip(-1)  # mirrored digits: a poor model
    judge = Judge(feature_extractor_weights_path=mnist_classifier)
    passes = []
    extract = judge.extractor.forward
    monkeypatch.setattr(judge.extractor, "forward", lambda images: passes.append(len(images)) or extract(images))
    real_features = judge.features(real)
    ours = [judge.scores(generated, real_features, seed=seed) for seed in (0, 1)]
    assert sum(passes) == len(real) + 2 * len(generated)  # the real split once, each sample set once
    for seed, scores in zip((0, 1), ours):
        options = dict(feature_extractor="twostage-classifier", feature_extractor_weights_path=mnist_classifier,
                       rng_seed=seed, save_cpu_ram=True, cache=False, verbose=False, cuda=False)
        library = torch_fidelity.calculate_metrics(input1=ImageTensorDataset(generated), isc=True, isc_splits=3, **options)
        library |= torch_fidelity.calculate_metrics(input1=ImageTensorDataset(generated), input2=ImageTensorDataset(real),
                                                    fid=True, kid=True, prc=True, kid_subset_size=300, prc_batch_size=2048,
                                                    **options)
        for theirs, key in (("inception_score_mean", "is"), ("frechet_inception_distance", "fid"),
                            ("kernel_inception_distance_mean", "kid"), ("precision", "precision"), ("recall", "recall")):
            assert scores[key] == pytest.approx(library[theirs], rel=1e-5, abs=1e-6), key
    assert ours[0]["kid"] != ours[1]["kid"]  # the seed reaches KID's subsets


def test_kid_from_the_whole_kernels_is_torch_fidelitys_kid_and_its_subset_loop_runs_where_that_is_cheaper(monkeypatch):
    from torch_fidelity.metric_kid import kid_features_to_metric

    import evaluation.kid

    loops = []
    monkeypatch.setattr(evaluation.kid, "kid_features_to_metric",
                        lambda *args, **kwargs: loops.append(args) or kid_features_to_metric(*args, **kwargs))
    generator = torch.Generator().manual_seed(0)
    # Sets of more rows than a kernel block (1,024) and a subset as large as the smaller set: the whole kernels;
    # small subsets of larger sets in few dimensions: torch-fidelity's loop.
    for sizes, subset_size, dimensions, route in (((1500, 1100), 1100, 64, "whole"), ((300, 300), 20, 8, "loop")):
        first = torch.randn((sizes[0], dimensions), generator=generator).relu()
        second = (torch.randn((sizes[1], dimensions), generator=generator) + 0.2).relu()
        theirs = kid_features_to_metric(first, second, kid_subsets=100, kid_subset_size=subset_size, rng_seed=5,
                                        verbose=False)
        loops.clear()
        ours = kernel_inception_distance(first, second, subset_size=subset_size, seed=5)
        assert len(loops) == (route == "loop"), route
        assert ours["kid"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5)
        assert ours["kid_std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-4)
        assert ours["kid"] != kernel_inception_distance(first, second, subset_size=subset_size, seed=6)["kid"]
    with pytest.raises(ValueError, match="subset_size=301: use 2 to 300"):
        kernel_inception_distance(first, second, subset_size=301)


def test_precision_recall_with_the_real_neighbourhoods_once_is_torch_fidelitys_over_several_distance_blocks():
    from torch_fidelity.metric_prc import prc_features_to_metric

    generator = torch.Generator().manual_seed(0)
    real = torch.randn((2300, 16), generator=generator)  # more rows than a block of distances (2,048)
    generated = torch.cat([real[:700] + 0.3 * torch.randn((700, 16), generator=generator),  # near the real set
                           2 + torch.randn((1500, 16), generator=generator)])  # off it: precision and recall < 1
    theirs = prc_features_to_metric(generated, real, prc_neighborhood=3, prc_batch_size=2048, save_cpu_ram=True,
                                    verbose=False)
    precision, recall = precision_recall(generated, real, neighbourhood_radii(generated), neighbourhood_radii(real))
    assert 0.2 < precision < 0.9 and 0.2 < recall < 0.9
    assert precision == theirs["precision"] and recall == pytest.approx(theirs["recall"], abs=1 / len(real))


def test_a_dataset_folder_reached_through_a_link_or_a_relative_path_shares_one_cached_classifier(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "mnist")
    monkeypatch.chdir(tmp_path)
    names = {classifier_cache_name(path)[0] for path in (str(tmp_path / "mnist"), str(tmp_path / "link"), "mnist", "./link/")}
    assert len(names) == 1 and names.pop().startswith("mnist-")
    assert classifier_cache_name("mnist", resolution=32)[0] != classifier_cache_name("mnist")[0]  # another resolution
    assert classifier_cache_name("ylecun/mnist")[1] != classifier_cache_name("mnist")[1]  # a Hub id is not the folder


def test_inception_score_of_uniform_noise_is_below_2(mnist_classifier):
    noise = torch.randint(0, 256, (2000, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    score, _ = inception_score(noise, feature_extractor_weights_path=mnist_classifier)
    assert score < 2


def test_fid_of_test_split_with_itself_is_near_zero_and_grows_with_blur(mnist, mnist_classifier):
    real = mnist.test_images[:2000]  # 2,000 images pin FID's 128-D statistics down well; all 10,000 cost 5x the time
    fids = [fidelity_metrics(real, real, metrics=("fid",), feature_extractor_weights_path=mnist_classifier)["fid"]]
    for sigma in (1.0, 2.0):
        blurred = gaussian_blur(real, kernel_size=7, sigma=sigma)
        fids.append(fidelity_metrics(blurred, real, metrics=("fid",), feature_extractor_weights_path=mnist_classifier)["fid"])
    assert abs(fids[0]) < 1e-3
    assert fids[0] < fids[1] < fids[2]
    assert fids[1] > 1.0


def made_up_inception_weights(path: str) -> None:
    """A weights file with the shapes of torch-fidelity's Inception-v3 (the real one cannot be downloaded here):
    the network's own modules, He-initialised so that activations neither vanish nor explode through 90 layers."""
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    class InceptionShapes(inception.FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # build the modules only; weights come below
            return None

    downloader = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: {}
    try:
        network = InceptionShapes("shapes", ["2048"])
    finally:
        inception.load_state_dict_from_url = downloader
    torch.manual_seed(0)
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)


def test_inception_v3_path_runs_end_to_end_with_a_local_weights_file(tmp_path, monkeypatch):
    weights = str(tmp_path / "inception.pth")
    made_up_inception_weights(weights)
    digits = load_image_data("digits")
    loads, torch_load = [], torch.load  # every torch.load of the file, as called: by us only, once, weights only
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: loads.append(kwargs.get("weights_only")) or torch_load(*args, **kwargs))
    for _ in range(2):
        scores = fidelity_metrics(
            digits.test_images[:5], digits.train_images[:5], feature_extractor=INCEPTION, feature_extractor_weights_path=weights,
            is_split_size=2000,
        )
    assert loads == [True]
    # Inception's 1,008 classes need splits of at least as many, and its 2,048 features more samples, than 5.
    assert "fewer than one IS split of 2000" in scores["withheld"]["is"]
    assert "in 2048 feature dimensions" in scores["withheld"]["fid"]
    assert {key for key, value in scores.items() if isinstance(value, float)} == {"kid", "kid_std", "precision", "recall"}
    assert all(math.isfinite(scores[key]) for key in ("kid", "kid_std", "precision", "recall"))
    assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1


def test_inception_weights_holding_code_are_refused(tmp_path):
    path = str(tmp_path / "weights.pth")
    torch.save({"weights": torch.zeros(1), "not a tensor": AE}, path)  # a class: unpickling it imports code
    with pytest.raises(ValueError, match="more than tensors"):
        inception_weights(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        inception_weights(str(tmp_path / "missing.pth"))


def test_importance_weighted_bound_lies_above_the_elbo_which_matches_the_analytic_one(monkeypatch):
    digits = load_image_data("digits", resolution=16)
    torch.manual_seed(0)
    model = VAE(image_size=16, latent_dim=4, hidden_channels=(8, 16)).eval()
    images = digits.test_images[:16]
    estimates = vae_likelihoods(model, images, num_importance_samples=512)["N(0,I)"]
    assert estimates["log_px_nats"] > estimates["elbo_nats"]
    # The 512 * 16 samples decode in chunks (of 1,024 here); in one call, the same numbers up to float rounding.
    monkeypatch.setattr(likelihood, "_decoder_chunk", lambda model: 10**9)
    in_one_call = vae_likelihoods(model, images, num_importance_samples=512)["N(0,I)"]
    monkeypatch.undo()
    for key in ("log_px_nats", "elbo_nats"):
        assert estimates[key] == pytest.approx(in_one_call[key], rel=1e-5)
    # It decodes channels last for speed, and hands the model back in its own memory order.
    assert all(p.is_contiguous() for p in model.parameters())
    # The Monte Carlo ELBO against -(E[-log p(x|z)] + KL) with the KL in closed form.
    x = to_float(images)
    with torch.no_grad():
        mean, logvar = model.encode(x)
        z = mean + torch.randn(512, *mean.shape) * (0.5 * logvar).exp()
        reconstruction = reconstruction_nll(model.decode_logits(z.flatten(0, 1)), x.repeat(512, 1, 1, 1), "bernoulli", 0.1)
        analytic = -(reconstruction.mean() + gaussian_kl(mean, logvar).mean()).item()
    assert estimates["elbo_nats"] == pytest.approx(analytic, abs=0.02 * abs(analytic))
    single = vae_likelihoods(model, images, num_importance_samples=1)["N(0,I)"]
    assert single["log_px_nats"] == pytest.approx(single["elbo_nats"])
    assert single["nll_bits_per_dim"] == pytest.approx(-single["log_px_nats"] / (16 * 16 * math.log(2)))


def test_codebook_usage_and_perplexity():
    codes = torch.tensor([[[0, 1], [2, 3]], [[0, 1], [2, 3]]])
    statistics = codebook_statistics(codes, num_embeddings=8)
    assert statistics["codebook_usage"] == pytest.approx(0.5)
    assert statistics["perplexity"] == pytest.approx(4.0)


def _cell_value(cell: str) -> float | None:
    return None if cell == "—" else float(re.match(r"-?[\d.]+", cell).group())


def test_report_json_and_table_agree(tmp_path, mnist_path, mnist_classifier):
    """The whole evaluate command on small untrained stage-1 models (training is not needed for agreement), a
    PixelCNN naming its VQ-VAE and mixture priors naming the AE and VAE; the table in REPORT.md must show exactly
    the numbers of report.json."""
    from evaluation.evaluate import main

    torch.manual_seed(0)
    VAE(latent_dim=8).save_pretrained(tmp_path / "vae")
    AE(latent_dim=8).save_pretrained(tmp_path / "ae")
    VQVAE(num_embeddings=16).save_pretrained(tmp_path / "vqvae")
    GatedPixelCNN(num_embeddings=16, hidden_channels=8, num_layers=2, vqvae_id=str(tmp_path / "vqvae")).save_pretrained(tmp_path / "pixelcnn")
    GatedPixelCNN(num_embeddings=16, hidden_channels=8, num_layers=2, num_classes=10,
                  vqvae_id=str(tmp_path / "vqvae")).save_pretrained(tmp_path / "pixelcnn-conditional")
    # Unfitted mixtures: every component is N(0, I), so the VAE's likelihood under it must equal that under N(0, I).
    MixturePrior(latent_dim=8, n_components=3, autoencoder_id=str(tmp_path / "vae")).save_pretrained(tmp_path / "vae-gmm")
    MixturePrior(latent_dim=8, n_components=3, autoencoder_id=str(tmp_path / "ae")).save_pretrained(tmp_path / "ae-gmm")
    report_dir = tmp_path / "report"
    main([
        str(tmp_path / "vae"), str(tmp_path / "ae"), str(tmp_path / "pixelcnn"), str(tmp_path / "vae-gmm"), str(tmp_path / "ae-gmm"),
        str(tmp_path / "pixelcnn-conditional"),
        "--output_dir", str(report_dir), "--dataset_name", mnist_path, "--max_eval_samples", "200", "--max_train_samples", "500",
        "--num_importance_samples", "2", "--tsne_points", "100", "--feature_extractor_weights_path", mnist_classifier,
    ])
    report = json.loads((report_dir / "report.json").read_text())
    table = parse_table((report_dir / "REPORT.md").read_text())
    expected_rows = {
        "unconditional": {("vae", "N(0,I)"), ("vae", "Gaussian mixture"), ("ae", "N(0,I)"), ("ae", "Gaussian mixture"),
                          ("vqvae", "uniform"), ("vqvae", "PixelCNN")},
        "class-conditional": {("vae", "Gaussian mixture per class"), ("ae", "Gaussian mixture per class"),
                              ("vqvae", "per-class code frequencies"), ("vqvae", "PixelCNN (class-conditional)")},
    }
    for section, rows in expected_rows.items():
        assert {(row["model"], row["prior"]) for row in report["rows"] if row["section"] == section} == rows
    markdown = (report_dir / "REPORT.md").read_text()
    assert markdown.index("## Unconditional priors") < markdown.index("## Class-conditional priors")
    assert "N = 200 samples per row" in markdown and "IS: mean ± std over 2 splits of 100 samples" in markdown
    assert "the IS of 200 real test images, scored as every row is" in markdown and "test accuracy is 99." in markdown
    assert [(row["model"], row["prior"]) for row in table] == [(row["model"], row["prior"]) for row in report["rows"]]
    for shown, row in zip(table, report["rows"]):
        for header, key, template in COLUMNS:
            value = row[key]
            if key in row["withheld"]:
                assert shown[header] == "withheld"
            elif value is None:
                assert shown[header] == "—"
            else:
                decimals = int(re.search(r"\.(\d+)f", template).group(1))
                assert _cell_value(shown[header]) == pytest.approx(value, abs=0.5 * 10**-decimals + 1e-12), (row, header)
    row = {(r["model"], r["prior"]): r for r in report["rows"]}
    assert row["vae", "Gaussian mixture"]["nll"] == pytest.approx(row["vae", "N(0,I)"]["nll"], rel=1e-5)
    assert row["vae", "Gaussian mixture"]["prior_source"] == str(tmp_path / "vae-gmm") and row["vae", "N(0,I)"]["prior_source"] is None
    assert row["ae", "Gaussian mixture"]["nll"] is None  # a deterministic decoder has no likelihood
    uniform, pixelcnn = row["vqvae", "uniform"], row["vqvae", "PixelCNN"]
    assert uniform["nll"] == pytest.approx(4.0) and uniform["nll_unit"] == "bits/code"  # log2 of 16 codes
    assert math.isfinite(pixelcnn["nll"]) and pixelcnn["nll_unit"] == "bits/code"
    for model in report["models"].values():
        for figure in model["figures"].values():
            assert (report_dir / figure).stat().st_size > 0
            assert f"]({figure})" in (report_dir / "REPORT.md").read_text()


def test_per_class_code_frequencies_sample_and_score_each_class_from_its_own_codes():
    from stage2_prior.class_baselines import ClassCodeFrequencies, ClassMixtures

    codes = torch.cat([torch.full((50, 2, 2), 3), torch.full((50, 2, 2), 5)])
    codes[:, 0, 0] = torch.arange(100) % 2  # one position where each class uses two codes equally
    labels = torch.arange(100) // 50
    frequencies = ClassCodeFrequencies(codes, labels, num_embeddings=8, num_classes=2, smoothing=0.01)
    samples = frequencies.sample(torch.tensor([0] * 200 + [1] * 200), seed=0)
    assert (samples[:200, 1:, :] == 3).float().mean() > 0.99 and (samples[200:, 1:, :] == 5).float().mean() > 0.99
    assert 0.4 < (samples[:, 0, 0] == 1).float().mean() < 0.6
    # Three positions of one certain code and one of two equally likely codes: about 1/4 bit per code.
    assert frequencies.nll_bits(codes, labels) == pytest.approx(0.25, abs=0.01)
    assert frequencies.nll_bits(codes, 1 - labels) > 5  # the other class's codes are all but impossible
    latents = torch.cat([torch.randn(60, 2) - 5, torch.randn(60, 2) + 5])
    mixtures = ClassMixtures(latents, torch.arange(120) // 60, num_classes=2, n_components=2)
    z = mixtures.sample(torch.tensor([0, 1] * 50), seed=0)
    assert (z[0::2] < 0).float().mean() > 0.95 and (z[1::2] > 0).float().mean() > 0.95


def test_a_weak_classifier_is_refused_as_a_judge_unless_accepted(tmp_path):
    from evaluation.evaluate import main
    from evaluation.train_classifier import save_classifier, train_classifier

    digits = load_image_data("digits")
    weak, metrics = train_classifier(digits, num_epochs=1, min_train_steps=2, learning_rate=1e-4)
    assert metrics["test_accuracy"] < 0.95
    save_classifier(weak, metrics, digits, {}, str(tmp_path / "weak"))
    torch.manual_seed(0)
    VAE(image_size=8, latent_dim=4, hidden_channels=(8, 16)).save_pretrained(tmp_path / "vae")
    arguments = [str(tmp_path / "vae"), "--dataset_name", "digits", "--feature_extractor_weights_path", str(tmp_path / "weak"),
                 "--num_importance_samples", "2", "--tsne_points", "50", "--output_dir", str(tmp_path / "report")]
    with pytest.raises(SystemExit, match=r"test accuracy 0\.\d+, under --min_classifier_accuracy 0\.95.*--accept_weak_classifier"):
        main(arguments)
    main(arguments + ["--accept_weak_classifier"])
    markdown = (tmp_path / "report" / "REPORT.md").read_text()
    assert f"The classifier's test accuracy is {metrics['test_accuracy']:.2%}" in markdown
    assert "It is under 95%: IS and FID here score the classifier as much as the samples" in markdown


def test_colour_recipe_crops_and_flips_and_its_resnet_classifies_cifar_sized_images():
    from evaluation.classifier import Classifier
    from evaluation.train_classifier import COLOUR_ARCHITECTURE, random_crop_and_flip

    torch.manual_seed(0)
    images = torch.rand(64, 3, 32, 32)
    unshifted = random_crop_and_flip(images, padding=0)
    mirrored = [torch.equal(out, image.flip(-1)) for out, image in zip(unshifted, images)]
    assert all(mirrored[index] or torch.equal(unshifted[index], images[index]) for index in range(64))
    assert 10 < sum(mirrored) < 54  # about half mirrored
    shifted = random_crop_and_flip(images)
    assert shifted.shape == images.shape and not torch.equal(shifted, images)
    resnet = Classifier(image_size=32, in_channels=3, num_classes=10, **COLOUR_ARCHITECTURE).eval()
    assert resnet.features(images).shape == (64, COLOUR_ARCHITECTURE["feature_dim"]) and resnet(images).shape == (64, 10)


@pytest.mark.parametrize("training_flags, split_seed", [(["--seed", "0"], 0), (["--seed", "3"], 3), (["--seed", "3", "--split_seed", "0"], 0)],
                         ids=["seed_0", "seed_3", "seed_3_split_0"])
def test_a_run_is_evaluated_on_its_own_test_split_whatever_the_evaluations_seed(training_flags, split_seed, tmp_path):
    """The digits have no test split: training cuts one, seeded by --split_seed (default --seed). The evaluation,
    given another --seed, must still score on the run's test images, never on images the run trained on."""
    from evaluation.evaluate import load_test_split, parse_args, resolve_dataset
    from evaluation.models import load_models
    from stage1_autoencoders.train import main as train_main

    train_main(["--model", "ae", "--dataset_name", "digits", "--hidden_channels", "8", "16", "--latent_dim", "4",
                "--max_train_steps", "2", "--output_dir", str(tmp_path / "ae"), *training_flags])
    groups = list(load_models([str(tmp_path / "ae")], torch.device("cpu")).groups.values())
    expected = load_image_data("digits", seed=split_seed).test_images
    recorded = parse_args([str(tmp_path / "ae"), "--output_dir", str(tmp_path / "report"), "--seed", "5"])
    named = parse_args([str(tmp_path / "ae"), "--output_dir", str(tmp_path / "report"), "--seed", "5", "--dataset_name", "digits",
                        "--split_seed", str(split_seed)])
    for args in (recorded, named):
        evaluated = load_test_split(resolve_dataset(args, groups), groups, None)[0]
        assert torch.equal(evaluated.test_images, expected)
        assert not torch.equal(evaluated.test_images, load_image_data("digits", seed=5).test_images)
    with pytest.raises(SystemExit, match="--split_seed 3 needs --dataset_name"):
        resolve_dataset(parse_args([str(tmp_path / "ae"), "--output_dir", "x", "--split_seed", "3"]), groups)


def test_a_recorded_dataset_names_its_classifier_by_the_dataset_and_a_file_name_a_disk_takes():
    recorded = json.dumps({"dataset_name": None, "train_data_dir": "/data/" + "very long folder name " * 20, "seed": 1})
    name, key = classifier_cache_name(recorded)
    assert re.fullmatch(r"very_long_folder_name[A-Za-z0-9_]*-[0-9a-f]{12}", name) and len(name) <= 77
    assert name != classifier_cache_name(recorded.replace('"seed": 1', '"seed": 2'))[0]
    assert classifier_cache_name(json.dumps({"dataset_name": "digits", "seed": 1}))[0].startswith("digits-")
