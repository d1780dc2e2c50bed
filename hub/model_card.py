"""The model card (README.md), written from the run: config.json says what the model is, training_info.json how it
was trained, and the evaluation report (evaluation/report.py's report.json, when the run was evaluated) how well it
does. Nothing in it is a blank to fill in.

A report row belongs on this card when its model's `source` (report["models"][name]["source"]) is this run's folder
or repo id; for a prior's card, when the row's `prior_source` is. Those rows go into the card's scores table and, one
metric each, into the `model-index` metadata that the Hub shows as evaluation results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hub.auto import MODELS
from hub.files import looks_like_path

TRAINING_INFO_NAME = "training_info.json"
SAMPLES_NAME = "samples.png"

DESCRIPTIONS = {
    "ae": "a plain autoencoder: a deterministic {latent_dim}-dimensional latent and a reconstruction loss. It has no "
          "prior of its own; stage 2 fits one (a Gaussian mixture over its latents) to make it a generator",
    "vae": "a variational autoencoder (Kingma & Welling, 2014) with a {latent_dim}-dimensional Gaussian latent, "
           "sampled by decoding draws from N(0, I)",
    "beta_vae": "a β-VAE (Higgins et al., 2017) with β = {beta} and a {latent_dim}-dimensional Gaussian latent, "
                "sampled by decoding draws from N(0, I)",
    "vqvae": "a VQ-VAE (van den Oord et al., 2017): a {grid} grid of codes from a codebook of {num_embeddings} "
             "vectors of size {embedding_dim}, commitment cost β = {commitment_cost}, codebook learned {codebook_rule}",
    "gated_pixelcnn": "a gated PixelCNN prior (van den Oord et al., 2016) over the {grid_height}×{grid_width} grid of "
                      "{num_embeddings} VQ-VAE codes: {num_layers} layers of {hidden_channels} channels, kernel "
                      "{kernel_size}, {conditioning}. Its samples are decoded by the VQ-VAE `{vqvae_id}`",
    "gaussian_mixture_prior": "a Gaussian mixture prior (\"ex-post density estimation\", Ghosh et al., 2020) of "
                              "{n_components} components with {covariance_type} covariances, fitted by EM to the "
                              "{latent_dim}-dimensional latents of the autoencoder `{autoencoder_id}`, which decodes "
                              "its samples",
    "vamp_vae": "a VampPrior VAE (Tomczak & Welling, 2018) with a {latent_dim}-dimensional Gaussian latent, trained "
                "and sampled with its own prior: the mixture of its posteriors at {num_pseudo_inputs} learned pseudo-inputs",
    "flow_prior": "a normalizing-flow prior ({flow}, {transforms} transforms, on zuko) fitted to the aggregate posterior "
                  "of the {latent_dim}-dimensional latents of the autoencoder `{autoencoder_id}`, which decodes its samples",
    "two_stage_vae_prior": "the second VAE of a two-stage VAE (Dai & Wipf, 2019), fitted to the aggregate posterior of "
                           "the {latent_dim}-dimensional latents of the autoencoder `{autoencoder_id}`, which decodes "
                           "its samples",
    "classifier": "a small CNN classifier of {num_classes} classes, the offline feature extractor behind the "
                  "project's Inception Score, FID and KID",
}
FAMILY_TAGS = {
    "ae": ["autoencoder"],
    "vae": ["vae", "autoencoder"],
    "beta_vae": ["beta-vae", "vae", "autoencoder"],
    "vqvae": ["vq-vae", "autoencoder"],
    "gated_pixelcnn": ["pixelcnn", "vq-vae", "prior"],
    "gaussian_mixture_prior": ["gaussian-mixture", "prior"],
    "vamp_vae": ["vampprior", "vae", "autoencoder"],
    "flow_prior": ["normalizing-flow", "prior"],
    "two_stage_vae_prior": ["two-stage-vae", "prior"],
    "classifier": ["image-classification"],
}


def build_model_card(
    config: dict,
    training_info: dict | None = None,
    report: dict | None = None,
    name_or_path: str | None = None,
    sample_image: str | None = None,
    sources: tuple[str, ...] = (),
) -> ModelCard:
    """The card of a model from its config.json and, when known, its training info, the evaluation report, and the
    sample grid beside it. `name_or_path` is where users load it from (the repo id once pushed), for the usage
    snippet; `sources` are the names the report may know this run by (its folder, its repo id)."""
    model_type = config.get("model_type", "")
    decoder = MODELS[model_type].decoder if model_type in MODELS else None  # a prior names its stage-1 model
    decoder_id = config.get(f"{decoder}_id") if decoder else None
    dataset = _dataset_name(training_info)
    rows = _report_rows(report, sources, is_prior=decoder is not None)
    results = _eval_results(model_type, training_info, report, rows, dataset)
    model_name = (name_or_path or model_type).rstrip("/").split("/")[-1]
    data = ModelCardData(
        model_name=model_name,
        library_name="twostage",
        license="apache-2.0",
        pipeline_tag="image-classification" if model_type == "classifier" else "unconditional-image-generation",
        tags=["twostage", model_type, *FAMILY_TAGS.get(model_type, []), *([dataset.split("/")[-1]] if dataset else [])],
        datasets=[dataset] if _is_hub_id(dataset) else None,
        base_model=decoder_id if _is_hub_id(decoder_id) else None,
        eval_results=results or None,
    )
    sections = [
        f"# {model_name}",
        f"![samples]({sample_image})" if sample_image else None,
        "## What it is\n\n" + _description(config) + ".\n\n" + _table(_config_rows(config), ("setting", "value")),
        _training_section(training_info),
        _scores_section(report, rows, training_info),
        _usage_section(config, name_or_path or "path/to/model"),
    ]
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def build_run_model_card(run_dir: str | Path, repo_id: str, report: dict | None = None) -> ModelCard:
    """The card of a finished run folder, to be pushed as `repo_id`."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    training_info_path = run_dir / TRAINING_INFO_NAME
    training_info = json.loads(training_info_path.read_text()) if training_info_path.is_file() else None
    sample_image = SAMPLES_NAME if (run_dir / SAMPLES_NAME).is_file() else None
    return build_model_card(config, training_info, report, repo_id, sample_image, sources=(str(run_dir), repo_id))


def usage_snippet(config: dict, name_or_path: str) -> str | None:
    """Python that loads the model and samples from it (the classifier: classifies random images)."""
    model_type = config.get("model_type")
    shape = f"{config.get('in_channels', 1)}, {config.get('image_size', 28)}, {config.get('image_size', 28)}"
    lines = []
    if MODELS.get(model_type) and MODELS[model_type].decoder:
        labels = ", labels=torch.arange(16) % {}".format(config["num_classes"]) if config.get("num_classes") else ""
        lines += [
            f'generator = from_pretrained("{name_or_path}")  # the prior and the stage-1 model it was trained for',
            f"images = generator.sample(16, seed=0{labels})  # (16, C, H, W) in [0, 1]",
        ]
    elif model_type in ("vae", "beta_vae", "vamp_vae"):
        lines += [
            f'model = from_pretrained("{name_or_path}")',
            "images = model.sample(16, generator=torch.Generator().manual_seed(0))  # decoded prior draws in [0, 1]",
        ]
    elif model_type == "vqvae":
        lines += [
            f'model = from_pretrained("{name_or_path}")',
            "# Codes drawn uniformly: the baseline prior. A PixelCNN prior trained on this model samples far better.",
            "images = model.sample_uniform(16, generator=torch.Generator().manual_seed(0))",
        ]
    elif model_type == "ae":
        lines += [
            f'model = from_pretrained("{name_or_path}")',
            "# No prior of its own: decode latents from a learned prior, or reconstruct images as here.",
            f"inputs = torch.rand(16, {shape}, generator=torch.Generator().manual_seed(0))",
            "with torch.no_grad():",
            "    images = model.reconstruct(inputs)",
        ]
    elif model_type == "classifier":
        lines += [
            f'model = from_pretrained("{name_or_path}")',
            f"images = torch.rand(16, {shape}, generator=torch.Generator().manual_seed(0))",
            "with torch.no_grad():",
            "    print(model(images).argmax(dim=1))  # predicted classes",
        ]
    else:
        return None  # not a model hub.from_pretrained knows
    lines.append('save_image(images, "samples.png", nrow=4)')
    imports = ["import torch"] if any("torch." in line for line in lines) else []
    imports += ["from torchvision.utils import save_image", "", "from hub import from_pretrained", ""]
    return "\n".join(imports + lines) + "\n"


def _usage_section(config: dict, name_or_path: str) -> str | None:
    snippet = usage_snippet(config, name_or_path)
    return f"## Usage\n\n```python\n{snippet}```" if snippet else None


def _description(config: dict) -> str:
    model_type = config.get("model_type", "")
    values = dict(config)
    if model_type == "vqvae":
        side = config["image_size"] // 2 ** len(config["hidden_channels"])
        values["grid"] = f"{side}×{side}"
        values["codebook_rule"] = (
            f"by exponential moving averages (decay {config['ema_decay']})" if config.get("ema_decay") else "by a codebook loss"
        )
        if config.get("fsq_levels"):  # finite scalar quantisation: no codebook vectors, nothing learned
            values["codebook_rule"] = f"as none: finite scalar quantisation with levels {config['fsq_levels']}"
    if model_type == "gated_pixelcnn":
        values["conditioning"] = f"conditioned on {config['num_classes']} classes" if config.get("num_classes") else "unconditional"
    sentence = DESCRIPTIONS.get(model_type, "a twostage model of type {model_type}").format(**values)
    return f"A twostage model: {sentence}"


def _config_rows(config: dict) -> list[tuple[str, str]]:
    return [(key, f"`{json.dumps(value)}`") for key, value in sorted(config.items())]


def _training_section(info: dict | None) -> str | None:
    if not info:
        return None
    dataset = info.get("dataset")
    source = dataset.get("source") if isinstance(dataset, dict) else dataset
    batch = info.get("train_batch_size_per_device", info.get("train_batch_size"))
    processes = info.get("num_processes", 1)
    seconds = info.get("wall_time_seconds", info.get("train_seconds"))
    summary = [
        f"Trained on **{source}**" if source else "Trained",
        f" for {info['steps']} steps" if "steps" in info else "",
        f", batch {batch} per device × {processes} process(es)" if batch else "",
        f" on {info['device']}" if info.get("device") else "",
        f", in {seconds:.0f} s" if isinstance(seconds, (int, float)) else "",
        ".",
    ]
    settings = {key: value for key, value in info.items() if key != "final_metrics"}
    if isinstance(dataset, dict):  # one row per field of the data's description
        settings.update({f"dataset {key}": value for key, value in settings.pop("dataset").items()})
    rows = [(key, f"`{json.dumps(value)}`") for key, value in sorted(settings.items())]
    section = "## How it was trained\n\n" + "".join(summary) + "\n\n" + _table(rows, ("setting", "value"))
    # Test-split numbers are in the scores; the rest of the final metrics (training-set statistics) go here.
    final = {key: value for key, value in (info.get("final_metrics") or {}).items() if not key.startswith("test")}
    if final:
        final_rows = [(key, _format_number(value)) for key, value in sorted(final.items())]
        section += "\n\nAt the end of training:\n\n" + _table(final_rows, ("metric", "value"))
    return section


def _scores_section(report: dict | None, rows: list[dict], training_info: dict | None) -> str | None:
    parts = []
    if rows:
        from evaluation.report import comparison_table  # the report's own table, so card and report read alike

        setup, ceiling = report["setup"], report["real_test_split"]
        parts.append(
            f"From the evaluation report (`{setup['command']}`): {setup['dataset']}, {setup['num_samples']} samples, "
            f"features from {setup['feature_extractor']}. The real test split's own IS is {ceiling['is']:.2f}, the "
            f"ceiling to read IS against.\n\n" + comparison_table(rows)
        )
    held_out = _held_out_metrics(training_info)
    if held_out:
        parts.append("On the test split at the end of training:\n\n"
                     + _table([(key, _format_number(value)) for key, value in held_out.items()], ("metric", "value")))
    return "## Scores\n\n" + "\n\n".join(parts) if parts else None


def _report_rows(report: dict | None, sources: tuple[str, ...], is_prior: bool) -> list[dict]:
    if not report:
        return []
    def normalised(name: str) -> str:
        return os.path.abspath(name) if looks_like_path(name) else name

    names = {normalised(str(name)) for name in sources}

    def is_this_run(source) -> bool:
        return source is not None and normalised(source) in names

    if is_prior:
        return [row for row in report["rows"] if is_this_run(row.get("prior_source"))]
    models = {name for name, model in report["models"].items() if is_this_run(model.get("source"))}
    return [row for row in report["rows"] if row["model"] in models]


def _held_out_metrics(info: dict | None) -> dict[str, float]:
    """Test-split numbers recorded by training (stage-1 final metrics, the classifier's accuracy)."""
    if not info:
        return {}
    metrics = {k: v for k, v in (info.get("final_metrics") or {}).items() if k.startswith("test")}
    if "test_accuracy" in info:
        metrics["test_accuracy"] = info["test_accuracy"]
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _eval_results(model_type: str, info: dict | None, report: dict | None, rows: list[dict], dataset: str | None) -> list[EvalResult]:
    """Held-out numbers only: the report's rows for this model, and the test-split metrics recorded by training."""
    task = "image-classification" if model_type == "classifier" else "unconditional-image-generation"
    dataset = dataset or "unknown"
    results = [
        EvalResult(task_type=task, dataset_type=dataset, dataset_name=dataset, metric_type=key.replace("/", "_"),
                   metric_name=key, metric_value=value)
        for key, value in _held_out_metrics(info).items()
    ]
    if rows:
        from evaluation.report import COLUMNS

        report_dataset = str(report["setup"]["dataset"])
        results += [
            EvalResult(task_type=task, dataset_type=report_dataset, dataset_name=report_dataset, metric_type=key,
                       metric_name=f"{header} ({row['model']}, {row['prior']})", metric_value=row[key])
            for row in rows
            for header, key, _ in COLUMNS
            if isinstance(row.get(key), (int, float))
        ]
    return results


def _dataset_name(info: dict | None) -> str | None:
    dataset = (info or {}).get("dataset")
    source = dataset.get("source") if isinstance(dataset, dict) else dataset
    if not source:
        return None
    return source if _is_hub_id(source) else os.path.basename(str(source).rstrip("/")).removeprefix("imagefolder:")


def _is_hub_id(name) -> bool:
    """A Hub repo id (namespace/name), as opposed to a local path or a bundled dataset's name."""
    return isinstance(name, str) and "/" in name and not looks_like_path(name)


def _table(rows, header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _format_number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
