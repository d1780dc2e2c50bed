"""The report folder: REPORT.md (the comparison table, the other numbers, every figure) and report.json (the same
numbers), both rendered from one dict so that they cannot disagree."""

from __future__ import annotations

import json
import os

# (header, key in a row of report.json, format). NLL and -ELBO carry their unit in the row ("nll_unit").
COLUMNS = [
    ("IS", "is", "{:.2f}"),
    ("FID", "fid", "{:.2f}"),
    ("KID", "kid", "{:.4f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("NLL", "nll", "{:.4f}"),
    ("−ELBO", "negative_elbo", "{:.4f}"),
    ("recon MSE", "reconstruction_mse", "{:.4f}"),
]
UNIT_COLUMNS = {"nll", "negative_elbo"}
MISSING = "—"


WITHHELD = "withheld"


def format_cell(row: dict, key: str, template: str) -> str:
    value = row.get(key)
    if key in row.get("withheld", {}):
        return WITHHELD
    if value is None:
        return MISSING
    text = template.format(value)
    return f"{text} {row['nll_unit']}" if key in UNIT_COLUMNS else text


def comparison_table(rows: list[dict]) -> str:
    """The markdown table: one row per model x prior."""
    lines = [
        "| model | prior | " + " | ".join(header for header, _, _ in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for row in rows:
        cells = [format_cell(row, key, template) for _, key, template in COLUMNS]
        lines.append(f"| {row['model']} | {row['prior']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_table(markdown: str) -> list[dict[str, str]]:
    """The comparison tables of a REPORT.md (every table before "## Per model") back as one dict of cells (by
    header) per row, in order."""
    lines = markdown.split("## Per model")[0].splitlines()
    split = lambda line: [cell.strip() for cell in line.strip().strip("|").split("|")]
    rows, index = [], 0
    while index < len(lines):
        if not lines[index].startswith("|"):
            index += 1
            continue
        header, index = split(lines[index]), index + 2  # the header and the |---| line under it
        while index < len(lines) and lines[index].startswith("|"):
            rows.append(dict(zip(header, split(lines[index]))))
            index += 1
    return rows


SECTIONS = {
    "unconditional": "## Unconditional priors\n\nEach learned prior beside the prior it replaces, which knows no labels "
                     "either: uniform codes for the VQ-VAE, N(0, I) for the rest.",
    "class-conditional": "## Class-conditional priors\n\nSampled with every class in turn, each beside a baseline that is "
                         "given the labels too: per class, the train split's frequency of each code at each position "
                         "(VQ-VAE), or a Gaussian mixture fitted to the class's latents (the rest).",
}


def section_tables(rows: list[dict]) -> list[str]:
    parts = []
    for section, heading in SECTIONS.items():
        chosen = [row for row in rows if row.get("section", "unconditional") == section]
        if chosen:
            parts += [heading, "", comparison_table(chosen), ""]
    return parts


def withheld_notes(report: dict) -> list[str]:
    """One line per reason a score was withheld, naming the rows it applies to."""
    rows_by_reason: dict[str, list[str]] = {}
    for row in report["rows"]:
        for key, reason in row.get("withheld", {}).items():
            rows_by_reason.setdefault(f"{key.upper()} withheld: {reason}.", []).append(f"{row['model']} + {row['prior']}")
    return [f"- {reason} ({', '.join(rows)})" for reason, rows in rows_by_reason.items()]


def ceiling_line(report: dict) -> str:
    setup, ceiling = report["setup"], report["real_test_split"]
    if ceiling["is"] is None:
        value = f"withheld ({ceiling.get('withheld', {}).get('is')})"
    else:
        value = f"{ceiling['is']:.2f} ± {ceiling['is_std']:.2f}"
    note = f"; {ceiling['note']}" if ceiling.get("note") else ""
    accuracy = setup.get("classifier_test_accuracy")
    judge = "" if accuracy is None else f" The classifier's test accuracy is {accuracy:.2%}."
    weak = (f" **It is under {setup['min_classifier_accuracy']:.0%}: IS and FID here score the classifier as much "
            "as the samples, and are no measure of quality.**" if setup.get("weak_classifier") else "")
    return (f"**Ceiling**: the IS of {ceiling.get('num_samples', setup['num_samples'])} real test images, scored as every row is, is "
            f"{value}{note}; read every IS below against it.{judge}{weak}")


def render_markdown(report: dict) -> str:
    setup = report["setup"]
    # Reports written before IS had splits of a fixed size do not record them.
    splits = (f" IS: mean ± std over {setup['is_splits']} splits of {setup['is_split_size']} samples."
              if "is_split_size" in setup else "")
    parts = [
        "# twostage evaluation report",
        "",
        f"Made by: `{setup['command']}`",
        "",
        f"Dataset: {setup['dataset']} ({setup['num_test_images']} test images). N = {setup['num_samples']} samples "
        f"per row, seed {setup['seed']}.{splits} Features for IS/FID/KID/precision/recall: {setup['feature_extractor']} "
        f"({setup['feature_extractor_weights_path']}).",
        "",
        ceiling_line(report),
        "",
        *section_tables(report["rows"]),
        *withheld_notes(report),
        "",
        "IS, precision, recall: higher is better; FID, KID, NLL, −ELBO, recon MSE: lower is better. "
        f"NLL and −ELBO of the (β-)VAEs are in bits per dimension of the test images, NLL importance-weighted with "
        f"k={setup['num_importance_samples']} posterior samples (in the model's own likelihood: compare models here, "
        "not with discrete-data papers); for the VQ-VAE, NLL is of the test split's codes in bits per code (uniform: "
        "log2 K). recon MSE: mean squared error per pixel of the test split's reconstructions, in [0, 1] units.",
        "",
        "## Per model",
        "",
    ]
    for name, model in report["models"].items():
        parts.append(f"### {name} ({model['model_type']}, from `{model['source']}`)")
        parts.append("")
        for key, value in model["metrics"].items():
            parts.append(f"- {key}: {value:.6g}" if isinstance(value, float) else f"- {key}: {value}")
        parts.append("")
        for caption, path in model["figures"].items():
            parts.append(f"**{caption}**\n\n![{caption}]({path})\n")
    return "\n".join(parts)


def write_report(report: dict, output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "report.json"), "w") as file:
        json.dump(report, file, indent=2)
    with open(os.path.join(output_dir, "REPORT.md"), "w") as file:
        file.write(render_markdown(report))
