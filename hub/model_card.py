"""The model card (README.md): config.json says what the model is, training_info.json how it was trained. Nothing in
it is a blank to fill in. This is the part of the card every model's save_pretrained writes, from its files alone;
hub/run_card.py adds a run's evaluation report when hub.push publishes it (and is the one that knows evaluation).
"""

from __future__ import annotations

import json
import os

from huggingface_hub import EvalResult, ModelCard, ModelCardData

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
    name_or_path: str | None = None,
    sample_image: str | None = None,
    report_scores: str | None = None,
    report_results: list[EvalResult] = (),
) -> ModelCard:
    """The card of a model from its config.json and, when known, its training info and the sample grid beside it.
    `name_or_path` is where users load it from (the repo id once pushed), for the usage snippet. An evaluation
    report's part (hub/run_card.py reads it): `report_scores`, its text for the scores section, and
    `report_results`, its metrics for the model-index."""
    model_type = config.get("model_type", "")
    decoder = decoder_prefix(config)  # a prior names its stage-1 model
    decoder_id = config.get(f"{decoder}_id") if decoder else None
    dataset = _dataset_name(training_info)
    results = [*_eval_results(model_type, training_info, dataset), *report_results]
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
        _scores_section(report_scores, training_info),
        _usage_section(config, name_or_path or "path/to/model"),
    ]
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


LOCAL_PREFIX = "local:"


def without_local_paths(value):
    """A run's records as published: a local path (which nobody else can reach, and which tells where this machine
    keeps its files) becomes "local:" and its last name, e.g. "local:mnist"; Hub ids and names stay as they are."""
    if isinstance(value, dict):
        return {key: without_local_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_local_paths(item) for item in value]
    if isinstance(value, str):
        kind, _, path = value.rpartition(":") if value.startswith("imagefolder:") else ("", "", value)
        if os.path.isabs(path) or path.startswith("~"):
            return (f"{kind}:" if kind else LOCAL_PREFIX) + os.path.basename(path.rstrip("/\\"))
    return value


def usage_snippet(config: dict, name_or_path: str) -> str | None:
    """Python that loads the model and samples from it (the classifier: classifies random images)."""
    model_type = config.get("model_type")
    shape = f"{config.get('in_channels', 1)}, {config.get('image_size', 28)}, {config.get('image_size', 28)}"
    lines = []
    if decoder_prefix(config):
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


def decoder_prefix(config: dict) -> str | None:
    """A prior's config names the stage-1 model decoding its samples as PREFIX_id and PREFIX_revision ("vqvae");
    read from the config itself, so cards need no registry of models."""
    return next((key[: -len("_id")] for key in sorted(config) if key.endswith("_id") and f"{key[:-3]}_revision" in config), None)


def _usage_section(config: dict, name_or_path: str) -> str | None:
    snippet = usage_snippet(config, name_or_path)
    return f"## Usage\n\n```python\n{snippet}```" if snippet else None


def _description(config: dict) -> str:
    model_type = config.get("model_type", "")
    values = dict(config)
    if model_type == "vqvae":
        side = config["image_size"] // (config.get("downsampling_factor") or 2 ** len(config["hidden_channels"]))
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


def _scores_section(report_scores: str | None, training_info: dict | None) -> str | None:
    parts = [report_scores] if report_scores else []
    held_out = _held_out_metrics(training_info)
    if held_out:
        parts.append("On the test split at the end of training:\n\n"
                     + _table([(key, _format_number(value)) for key, value in held_out.items()], ("metric", "value")))
    return "## Scores\n\n" + "\n\n".join(parts) if parts else None


def _held_out_metrics(info: dict | None) -> dict[str, float]:
    """Test-split numbers recorded by training (stage-1 final metrics, the classifier's accuracy)."""
    if not info:
        return {}
    metrics = {k: v for k, v in (info.get("final_metrics") or {}).items() if k.startswith("test")}
    if "test_accuracy" in info:
        metrics["test_accuracy"] = info["test_accuracy"]
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _eval_results(model_type: str, info: dict | None, dataset: str | None) -> list[EvalResult]:
    """The test-split metrics recorded by training (held-out numbers only)."""
    dataset = dataset or "unknown"
    return [
        EvalResult(task_type=task_type(model_type), dataset_type=dataset, dataset_name=dataset,
                   metric_type=key.replace("/", "_"), metric_name=key, metric_value=value)
        for key, value in _held_out_metrics(info).items()
    ]


def task_type(model_type: str) -> str:
    return "image-classification" if model_type == "classifier" else "unconditional-image-generation"


def _dataset_name(info: dict | None) -> str | None:
    dataset = (info or {}).get("dataset")
    source = dataset.get("source") if isinstance(dataset, dict) else dataset
    if not source:
        return None
    name = os.path.basename(str(source).rstrip("/"))
    return source if _is_hub_id(source) else name.removeprefix("imagefolder:").removeprefix(LOCAL_PREFIX)


def _is_hub_id(name) -> bool:
    """A Hub repo id (namespace/name), as opposed to a local path or a bundled dataset's name."""
    return isinstance(name, str) and "/" in name and not looks_like_path(name)


def _table(rows, header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _format_number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
