"""Scores every stage-1 model and prior given and writes one report folder: REPORT.md, report.json, figures/.

    python -m evaluation.evaluate runs/vae runs/vqvae runs/vqvae-pixelcnn --output_dir report

Each argument is a run folder or a Hub id of a stage-1 model (AE, VAE, β-VAE, VQ-VAE) or of a prior; a prior
joins the row group of the model it was trained on (loading that model too if it is not among the arguments).
Every model also gets its baseline prior: N(0, I) for continuous latents, uniform codes for the VQ-VAE.
Rows are model x prior; columns IS, FID, KID, precision, recall (torch-fidelity, against the test split), NLL,
−ELBO and reconstruction error.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys

import torch
from tqdm.auto import tqdm

from evaluation import figures
from evaluation.classifier import classifier_test_accuracy
from evaluation.fidelity import CLASSIFIER, FEATURE_EXTRACTORS, IS_SPLIT_SIZE, Judge, real_ceiling, to_uint8
from evaluation.likelihood import (
    code_nll_bits,
    codebook_statistics,
    encode_codes,
    reconstruction_error,
    standard_normal_log_prob,
    vae_likelihoods,
)
from evaluation.models import ModelGroup, baseline_samples, fit_class_baseline, is_conditional, load_models, sample_prior
from evaluation.report import write_report
from evaluation.train_classifier import trained_classifier_folder
from stage1_autoencoders.data import ImageData, dataset_reference, images_from_every_class, load_image_data, spread_over_classes

VARIATIONAL_TYPES = ("vae", "beta_vae", "vamp_vae")
UNCONDITIONAL, CONDITIONAL = "unconditional", "class-conditional"  # the report's two tables
# Below this test accuracy the classifier's IS says more about the judge than the samples.
MIN_CLASSIFIER_ACCURACY = 0.95


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="RUN_OR_HUB_ID", help="Stage-1 models and priors to evaluate.")
    parser.add_argument("--output_dir", required=True, help="The report folder (REPORT.md, report.json, figures/).")
    parser.add_argument("--dataset_name", default=None,
                        help="The dataset whose test split is the reference; default: the one in the first run "
                             "folder's training_info.json.")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Use only the first N test images.")
    parser.add_argument("--max_train_samples", type=int, default=None,
                        help="Fit the class-conditional baselines to only the first N train images.")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="Samples per model x prior (default: as many as test images).")
    parser.add_argument("--feature_extractor", default=CLASSIFIER, choices=FEATURE_EXTRACTORS,
                        help="The project's classifier of the dataset (offline default) or torch-fidelity's Inception-v3.")
    parser.add_argument("--feature_extractor_weights_path", default=None,
                        help="Classifier: its folder or Hub id (default: trained once per dataset and cached under "
                             "$TWOSTAGE_CACHE or ~/.cache/twostage). Inception-v3: a local weights file (default: "
                             "torch-fidelity downloads it).")
    parser.add_argument("--is_split_size", type=int, default=IS_SPLIT_SIZE,
                        help="IS is the mean over splits of this many samples, for samples and the real ceiling alike.")
    parser.add_argument("--min_classifier_accuracy", type=float, default=MIN_CLASSIFIER_ACCURACY,
                        help="Refuse to score with a classifier whose test accuracy is lower (see --accept_weak_classifier).")
    parser.add_argument("--accept_weak_classifier", action="store_true",
                        help="Score with a classifier under --min_classifier_accuracy anyway; the report says so.")
    parser.add_argument("--num_importance_samples", type=int, default=32,
                        help="k posterior samples per test image for the importance-weighted log p(x) of VAEs.")
    parser.add_argument("--tsne_points", type=int, default=1000, help="Test images shown in each latent t-SNE.")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0,
                        help="Seeds sampling, importance samples, IS splits, KID subsets and t-SNE.")
    parser.add_argument("--split_seed", type=int, default=None,
                        help="With --dataset_name: the seed of the test split cut from a dataset without one (the "
                             "digits), as training's --split_seed (default: its --seed) chose it; give the models' own "
                             "(default 0). Without --dataset_name the split the models recorded is used.")
    return parser.parse_args(argv)


def resolve_dataset(args, groups: list[ModelGroup]) -> str:
    """--dataset_name split by --split_seed, or the dataset the first model that records one (training_info.json)
    was trained on, named so that load_image_data loads its test split (a bare name: the split of seed 0). --seed
    never picks the split: another split's test images would be training images."""
    if args.dataset_name:
        if not args.split_seed:
            return args.dataset_name
        # Named in full, so that the classifier cached for it is trained on this split's training images too.
        return dataset_reference(load_image_data(args.dataset_name, seed=args.split_seed, max_train_samples=1, max_test_samples=1).info)
    if args.split_seed is not None:
        raise SystemExit(f"--split_seed {args.split_seed} needs --dataset_name: without it the test split the models "
                         f"recorded is used.")
    for group in groups:
        if group.dataset is not None:
            return group.dataset
    raise SystemExit(
        "None of the models has a training_info.json naming its dataset; give the test split's dataset with "
        "--dataset_name (e.g. ylecun/mnist, ../shared/data/mnist or digits)."
    )


def load_test_split(dataset_name: str, groups: list[ModelGroup], max_eval_samples: int | None) -> tuple[ImageData, int | None]:
    """The test split at the models' image size (the train split is not needed: one image of it is decoded)."""
    shapes = {(group.model.in_channels, group.model.image_size) for group in groups}
    if len(shapes) > 1:
        raise SystemExit(f"The models take images of different (channels, size): {sorted(shapes)}; evaluate them in separate reports.")
    channels, size = shapes.pop()
    data = load_image_data(dataset_name, max_train_samples=1, max_test_samples=max_eval_samples)
    resolution = None
    if data.resolution != size:
        resolution = size
        data = load_image_data(dataset_name, resolution=size, max_train_samples=1, max_test_samples=max_eval_samples)
    if data.channels != channels:
        raise SystemExit(f"{dataset_name} has {data.channels}-channel images but the models take {channels}; check --dataset_name.")
    return data, resolution


def load_train_split(dataset_name: str, resolution: int | None, max_train_samples: int | None) -> ImageData:
    """The train split with its labels, for the class-conditional baselines."""
    train = load_image_data(dataset_name, resolution=resolution, max_train_samples=max_train_samples,
                            max_test_samples=1)
    if train.train_labels is None:
        raise SystemExit(f"{dataset_name} has no labels, which the class-conditional priors' baselines are fitted with.")
    return train


@torch.no_grad()
def class_baseline_samples(group: ModelGroup, train: ImageData, data: ImageData, num_samples: int, args):
    """The group's class-conditional baseline fitted to the train split (evaluation.models.fit_class_baseline, as
    the app fits it): its name, samples of every class in turn, and likelihood columns."""
    model = group.model
    baseline = fit_class_baseline(model, train.train_images, train.train_labels, train.num_classes, args.seed, args.batch_size)
    nll = {"nll": None, "negative_elbo": None, "nll_unit": None}
    if model.model_type == "vqvae":
        test_codes = encode_codes(model, data.test_images, args.batch_size)
        nll = {"nll": baseline.fitted.nll_bits(test_codes, data.test_labels), "negative_elbo": None, "nll_unit": "bits/code"}
    return baseline.name, baseline.sample(num_samples, args.seed, args.batch_size), nll


def model_metrics(group: ModelGroup, data: ImageData, args) -> tuple[dict, dict[str, dict]]:
    """Per model: reconstruction error, codebook statistics, likelihoods. Returns (model metrics, per-prior
    likelihood columns {prior name: {"nll", "negative_elbo", "nll_unit"}})."""
    model, images = group.model, data.test_images
    metrics = {"reconstruction_mse": reconstruction_error(model, images, args.batch_size, progress=True)}
    per_prior: dict[str, dict] = {}
    if model.model_type == "vqvae":
        codes = encode_codes(model, images, args.batch_size, progress=True)
        metrics.update(codebook_statistics(codes, model.num_embeddings))
        uniform_bits = torch.log2(torch.tensor(float(model.num_embeddings))).item()
        per_prior["uniform"] = {"nll": uniform_bits, "negative_elbo": None, "nll_unit": "bits/code"}
        for name, generator in group.learned_priors.items():
            bits = code_nll_bits(generator.prior, codes, data.test_labels, args.batch_size)
            metrics[f"code_nll_bits_per_code[{name}]"] = bits
            per_prior[name] = {"nll": bits, "negative_elbo": None, "nll_unit": "bits/code"}
    elif model.model_type in VARIATIONAL_TYPES:
        log_probs = {getattr(model, "prior_name", "N(0,I)"): getattr(model, "prior_log_prob", standard_normal_log_prob)}
        log_probs.update({name: g.prior.log_prob for name, g in group.learned_priors.items() if hasattr(g.prior, "log_prob")})
        likelihoods = vae_likelihoods(model, images, log_probs, args.num_importance_samples, batch_size=64, seed=args.seed, progress=True)
        for name, values in likelihoods.items():
            metrics.update({f"{key}[{name}]": value for key, value in values.items() if key != "num_importance_samples"})
            per_prior[name] = {"nll": values["nll_bits_per_dim"], "negative_elbo": values["negative_elbo_bits_per_dim"], "nll_unit": "bits/dim"}
    return metrics, per_prior


def model_figures(group: ModelGroup, data: ImageData, figure_dir: str, args) -> dict[str, str]:
    """The seed's figures for one model; returns caption -> path relative to the report folder."""
    model, name, made = group.model, group.name, {}

    def path(kind: str) -> str:
        return os.path.join(figure_dir, f"{name}-{kind}.png")

    count = min(args.tsne_points, len(data.test_images))
    index = spread_over_classes(data.test_labels, count) if data.test_labels is not None else torch.arange(count)
    figures.latent_scatter(model, data.test_images[index], None if data.test_labels is None else data.test_labels[index], path("latents"), name, seed=args.seed)
    made[f"{name}: test latents by label"] = path("latents")
    pairs = min(4, len(data.test_images) // 2)
    if model.model_type == "vqvae":
        figures.save_grid(figures.vqvae_figure(model, images_from_every_class(data, 8)), path("codes"), nrow=min(8, len(data.test_images)))
        made[f"{name}: originals, reconstructions, code-index maps"] = path("codes")
    else:
        start, end = data.test_images[:pairs], data.test_images[pairs : 2 * pairs]
        figures.save_grid(figures.interpolations(model, start, end, steps=8), path("interpolations"), nrow=10)
        made[f"{name}: interpolations between test images"] = path("interpolations")
    if model.model_type in VARIATIONAL_TYPES:
        figures.save_grid(figures.latent_traversal(model, data.test_images[:256], steps=9), path("traversals"), nrow=9)
        made[f"{name}: latent traversals (rows: latents by KL, -3 to +3)"] = path("traversals")
    return made


def evaluate(args, command: str) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_models(args.models, device)
    if loaded.classifiers:
        raise SystemExit(f"{loaded.classifiers[0].source} is a classifier, not a model to evaluate; give it with "
                         f"--feature_extractor_weights_path.")
    groups = list(loaded.groups.values())
    dataset_name = resolve_dataset(args, groups)
    data, resolution = load_test_split(dataset_name, groups, args.max_eval_samples)
    weights = args.feature_extractor_weights_path
    if args.feature_extractor == CLASSIFIER and weights is None:
        weights = trained_classifier_folder(dataset_name, resolution=resolution)
    accuracy = classifier_test_accuracy(weights) if args.feature_extractor == CLASSIFIER else None
    check_judge(accuracy, weights, args)
    # One extractor for the whole report, and the test split's features extracted once for every row.
    judge = Judge(args.feature_extractor, weights, is_split_size=args.is_split_size)
    real_features = judge.features(data.test_images)
    num_samples = args.num_samples or len(data.test_images)
    figure_dir = os.path.join(args.output_dir, "figures")
    os.makedirs(figure_dir, exist_ok=True)

    ceiling = real_ceiling(judge, real_features, num_samples, args.seed)
    # Class-conditional priors are compared with class-conditional baselines, fitted to the train split.
    conditional = any(is_conditional(generator) for group in groups for generator in group.learned_priors.values())
    train = load_train_split(dataset_name, resolution, args.max_train_samples) if conditional else None
    report = {
        "setup": {
            "command": command,
            "dataset": dataset_name,
            "num_test_images": len(data.test_images),
            "num_samples": num_samples,
            "seed": args.seed,
            "feature_extractor": args.feature_extractor,
            "feature_extractor_weights_path": weights,
            "classifier_test_accuracy": accuracy,
            "weak_classifier": accuracy is not None and accuracy < args.min_classifier_accuracy,
            "min_classifier_accuracy": args.min_classifier_accuracy,
            "is_split_size": args.is_split_size,
            "is_splits": num_samples // args.is_split_size,
            "num_importance_samples": args.num_importance_samples,
        },
        "real_test_split": {key: ceiling[key] for key in ("is", "is_std", "num_samples", "withheld", "note")},
        "rows": [],
        "models": {},
    }
    for group in tqdm(groups, desc="models", disable=None):
        metrics, likelihood_columns = model_metrics(group, data, args)
        made = model_figures(group, data, figure_dir, args)
        # Unconditional rows first, each section led by its baseline: the learned prior beside what it replaces.
        baseline_name, baseline = baseline_samples(group.model, num_samples, args.seed, args.batch_size)
        samplers = {baseline_name: (UNCONDITIONAL, baseline)}
        for prior_name, generator in group.learned_priors.items():
            if not is_conditional(generator):
                samplers[prior_name] = (UNCONDITIONAL, sample_prior(group, prior_name, num_samples, args.seed))
        if train is not None:
            class_name, class_samples, class_nll = class_baseline_samples(group, train, data, num_samples, args)
            samplers[class_name] = (CONDITIONAL, class_samples)
            likelihood_columns[class_name] = class_nll
        for prior_name, generator in group.learned_priors.items():
            if is_conditional(generator):
                samplers[prior_name] = (CONDITIONAL, sample_prior(group, prior_name, num_samples, args.seed))
        for prior_name, (section, samples) in samplers.items():
            grid_path = os.path.join(figure_dir, f"{group.name}-{re.sub(r'[^A-Za-z0-9]+', '_', prior_name)}-samples.png")
            figures.save_grid(samples[:64], grid_path)
            made[f"{group.name} + {prior_name}: samples"] = grid_path
            scores = judge.scores(to_uint8(samples), real_features, seed=args.seed)
            row = {"section": section, "model": group.name, "model_type": group.model.model_type, "prior": prior_name,
                   "prior_source": group.prior_sources.get(prior_name), **scores}
            row.update(likelihood_columns.get(prior_name, {"nll": None, "negative_elbo": None, "nll_unit": None}))
            row["reconstruction_mse"] = metrics["reconstruction_mse"]
            report["rows"].append(row)
        report["models"][group.name] = {
            "model_type": group.model.model_type,
            "source": group.source,
            "metrics": metrics,
            "figures": {caption: os.path.relpath(path, args.output_dir) for caption, path in made.items()},
        }
    report["rows"].sort(key=lambda row: row["section"] != UNCONDITIONAL)  # as the tables show them: unconditional first
    write_report(report, args.output_dir)
    return report


def check_judge(accuracy: float | None, weights: str, args) -> None:
    """A weak classifier makes IS a score of the classifier: refused unless --accept_weak_classifier."""
    if accuracy is None or accuracy >= args.min_classifier_accuracy or args.accept_weak_classifier:
        return
    raise SystemExit(
        f"The classifier {weights} has test accuracy {accuracy:.4f}, under --min_classifier_accuracy "
        f"{args.min_classifier_accuracy}: its IS and FID would not measure sample quality. Train a better one "
        f"(python -m evaluation.train_classifier) or pass --accept_weak_classifier to score anyway (the report says so)."
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    command = "python -m evaluation.evaluate " + shlex.join(sys.argv[1:] if argv is None else argv)
    report = evaluate(args, command)
    number = lambda value: "withheld" if value is None else f"{value:.2f}"
    print(f"Real test split IS (ceiling, N={report['real_test_split']['num_samples']}): "
          f"{number(report['real_test_split']['is'])}")
    for row in report["rows"]:
        print(f"{row['model']:>20} {row['prior']:>28}  IS {number(row['is'])}  FID {number(row['fid'])}")
    print(f"Report: {os.path.join(args.output_dir, 'REPORT.md')}")


if __name__ == "__main__":
    main()
