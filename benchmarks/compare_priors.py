"""Learned priors against their baselines, over training seeds: trains every model and prior with the README's
pipeline once per seed, then prints the evaluation reports' rows as mean ± std over the seeds, unconditional priors
first (against uniform codes or N(0, I)), then class-conditional ones (against per-class baselines), and per model
each learned prior beside its baseline on IS and FID.

    python benchmarks/compare_priors.py --dataset_name ../shared/data/mnist --seeds 0 1 2   # the README's MNIST table
    python benchmarks/compare_priors.py --dataset_name digits --epochs 15 --seeds 0 1 2      # minutes
    python benchmarks/compare_priors.py --from_reports runs/compare_priors/seed-*/report       # print existing reports

Training and evaluation are run_pipeline.sh's, unchanged (its environment variables carry the settings, SEED the
seed), so each seed's numbers are the ones the README's command produces with that seed. Every seed is evaluated
under one protocol: the same N, IS split size and classifier; the ceiling is the real test images' IS at that N.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from evaluation.report import SECTIONS  # noqa: E402

BASELINES = ("N(0,I)", "uniform", "per-class code frequencies", "Gaussian mixture per class")
COLUMNS = (("IS", "is", 2), ("FID", "fid", 2), ("KID", "kid", 4), ("precision", "precision", 3), ("recall", "recall", 3),
           ("NLL", "nll", 4))
# What must be equal in every seed's report for their numbers to be averaged.
PROTOCOL = ("dataset", "num_samples", "is_split_size", "is_splits", "feature_extractor", "feature_extractor_weights_path")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="ylecun/mnist")
    parser.add_argument("--epochs", type=int, default=2,
                        help="Epochs of every stage-1 model and of the PixelCNNs (2: about 70 minutes a seed on 2 CPU cores).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds (SEED of run_pipeline.sh).")
    parser.add_argument("--runs_dir", default="runs/compare_priors", help="Where the runs go: one seed-S folder a seed.")
    parser.add_argument("--extra", default="", help="More flags for every stage-1 run (run_pipeline.sh's EXTRA).")
    parser.add_argument("--eval_extra", default="",
                        help="More flags for the evaluation (run_pipeline.sh's EVAL_EXTRA), e.g. \"--num_samples 2000 "
                             "--max_eval_samples 2000\" to score 2,000 samples per row against the first 2,000 test images.")
    parser.add_argument("--from_reports", nargs="+", default=None, help="Report folders to summarise instead of training.")
    return parser.parse_args(argv)


def run_pipeline(args, seed: int) -> str:
    runs = os.path.join(args.runs_dir, f"seed-{seed}")
    # One test split for every seed (of a dataset without one, the digits): seeds vary training, not the test images,
    # so that every seed is scored against the same images by the same classifier.
    environment = {**os.environ, "DATASET": args.dataset_name, "EPOCHS": str(args.epochs), "RUNS": runs,
                   "EXTRA": f"--split_seed 0 {args.extra}", "EVAL_EXTRA": args.eval_extra, "SEED": str(seed)}
    subprocess.run(["bash", os.path.join(REPO, "run_pipeline.sh")], env=environment, check=True, cwd=REPO)
    return os.path.join(runs if os.path.isabs(runs) else os.path.join(REPO, runs), "report")


def load_reports(folders: list[str]) -> list[dict]:
    reports = []
    for folder in folders:
        with open(os.path.join(folder, "report.json")) as file:
            reports.append(json.load(file))
    first = reports[0]["setup"]
    for folder, report in zip(folders, reports):
        differing = [key for key in PROTOCOL if report["setup"].get(key) != first.get(key)]
        if differing:
            raise SystemExit(f"{folder} was scored under another protocol ({', '.join(differing)} differ from "
                             f"{folders[0]}'s); its numbers cannot be averaged with the others.")
    return reports


def spread(values: list[float | None]) -> tuple[float, float, int] | None:
    """(mean, std, count) of the values given; None where any seed withheld or lacked the number."""
    if not values or any(value is None for value in values):
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def cell(summary: tuple[float, float, int] | None, decimals: int) -> str:
    return "—" if summary is None else f"{summary[0]:.{decimals}f} ± {summary[1]:.{decimals}f}"


def summarise(reports: list[dict]) -> dict[tuple[str, str, str], dict]:
    """(section, model, prior) -> {column key: (mean, std, seeds)}, in the reports' row order."""
    keys = [(row.get("section", "unconditional"), row["model"], row["prior"]) for row in reports[0]["rows"]]
    rows_by_key = [{(row.get("section", "unconditional"), row["model"], row["prior"]): row for row in report["rows"]}
                   for report in reports]
    return {key: {column: spread([rows.get(key, {}).get(column) for rows in rows_by_key]) for _, column, _ in COLUMNS}
            for key in keys}


def markdown(reports: list[dict], seeds: list[str]) -> str:
    setup = reports[0]["setup"]
    ceiling = spread([report["real_test_split"]["is"] for report in reports])
    accuracy = setup.get("classifier_test_accuracy")
    summary = summarise(reports)
    lines = [
        f"{setup['dataset']}: N = {setup['num_samples']} samples per row, IS over {setup['is_splits']} splits of "
        f"{setup['is_split_size']}; mean ± std over {len(reports)} training seeds ({', '.join(seeds)}). Ceiling (the IS "
        f"of {setup['num_samples']} real test images, same splits): {cell(ceiling, 2)}. Classifier: "
        f"{setup['feature_extractor']}" + ("" if accuracy is None else f", test accuracy {accuracy:.2%}") + ".",
    ]
    for section, heading in SECTIONS.items():
        chosen = [(model, prior, values) for (row_section, model, prior), values in summary.items() if row_section == section]
        if not chosen:
            continue
        lines += ["", heading.splitlines()[0].replace("## ", "### "), "",
                  "| model | prior | " + " | ".join(header for header, _, _ in COLUMNS) + " |",
                  "|---|---|" + "---:|" * len(COLUMNS)]
        for model, prior, values in chosen:
            lines.append(f"| {model} | {prior} | " + " | ".join(cell(values[key], decimals) for _, key, decimals in COLUMNS) + " |")
    return "\n".join(lines)


def learned_against_baseline(summary: dict) -> list[str]:
    """Per model and section, each learned prior's mean IS and FID beside its baseline's."""
    lines = []
    for (section, model, prior), values in summary.items():
        if prior in BASELINES:
            continue
        baseline = next(((key, base) for key, base in summary.items()
                         if key[0] == section and key[1] == model and key[2] in BASELINES), None)
        if baseline is None or None in (values["is"], values["fid"], baseline[1]["is"], baseline[1]["fid"]):
            continue
        beats = values["is"][0] > baseline[1]["is"][0] and values["fid"][0] < baseline[1]["fid"][0]
        lines.append(f"{section:>17} {model:>12} {prior:>30} vs {baseline[0][2]:<28} IS {values['is'][0]:.2f} vs "
                     f"{baseline[1]['is'][0]:.2f}, FID {values['fid'][0]:.2f} vs {baseline[1]['fid'][0]:.2f}: "
                     f"{'beats both' if beats else 'does NOT beat both'}")
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    folders = args.from_reports or [run_pipeline(args, seed) for seed in args.seeds]
    reports = load_reports(folders)
    seeds = [str(report["setup"]["seed"]) for report in reports]
    print()
    print(markdown(reports, seeds))
    print("\nlearned prior vs its baseline, means over seeds (IS higher is better, FID lower is better)")
    print("\n".join(learned_against_baseline(summarise(reports))))


if __name__ == "__main__":
    main()
