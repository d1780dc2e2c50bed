"""The card hub.push publishes for a run folder: hub/model_card.py's card from the run's files, plus the run's rows
of an evaluation report (evaluation/report.py's report.json, when the run was evaluated).

A report row belongs on this card when its model's `source` (report["models"][name]["source"]) is this run's folder
or repo id; for a prior's card, when the row's `prior_source` is. Those rows go into the card's scores table and, one
metric each, into the `model-index` metadata that the Hub shows as evaluation results. This module sits above the
evaluation code; the base the models inherit (model_card.py, mixin.py) does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard

from evaluation.report import COLUMNS, ceiling_line, comparison_table
from hub.files import looks_like_path
from hub.model_card import SAMPLES_NAME, TRAINING_INFO_NAME, build_model_card, decoder_prefix, task_type, without_local_paths


def build_run_model_card(run_dir: str | Path, repo_id: str, report: dict | None = None) -> ModelCard:
    """The card of a finished run folder, to be pushed as `repo_id`."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    training_info_path = run_dir / TRAINING_INFO_NAME
    training_info = without_local_paths(json.loads(training_info_path.read_text())) if training_info_path.is_file() else None
    sample_image = SAMPLES_NAME if (run_dir / SAMPLES_NAME).is_file() else None
    rows = report_rows(report, (str(run_dir), repo_id), is_prior=decoder_prefix(config) is not None)
    return build_model_card(config, training_info, repo_id, sample_image, report_scores(report, rows),
                            report_results(config.get("model_type", ""), report, rows))


def report_rows(report: dict | None, sources: tuple[str, ...], is_prior: bool) -> list[dict]:
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


def report_scores(report: dict | None, rows: list[dict]) -> str | None:
    """The scores section's text from the report: its setup, the real split's IS, and its own table of these rows."""
    if not rows:
        return None
    setup = report["setup"]
    return (f"From the evaluation report (`{setup['command']}`): {setup['dataset']}, {setup['num_samples']} samples, "
            f"features from {setup['feature_extractor']}. {ceiling_line(report)}\n\n" + comparison_table(rows))


def report_results(model_type: str, report: dict | None, rows: list[dict]) -> list[EvalResult]:
    """The report's rows for this model, one model-index result a metric."""
    if not rows:
        return []
    dataset = str(report["setup"]["dataset"])
    return [
        EvalResult(task_type=task_type(model_type), dataset_type=dataset, dataset_name=dataset, metric_type=key,
                   metric_name=f"{header} ({row['model']}, {row['prior']})", metric_value=row[key])
        for row in rows
        for header, key, _ in COLUMNS
        if isinstance(row.get(key), (int, float))
    ]
