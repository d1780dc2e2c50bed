"""Learned priors against their baselines: trains every model and prior with the README's pipeline, then prints
the evaluation report's comparison table and, per model, the learned prior beside its baseline (GMM over N(0, I)
for the AE, VAE and β-VAEs; PixelCNN over uniform codes for the VQ-VAE) on IS and FID.

    python benchmarks/compare_priors.py --dataset_name ylecun/mnist                  # the README's MNIST table (2 epochs)
    python benchmarks/compare_priors.py --dataset_name ../shared/data/mnist           # the same, offline
    python benchmarks/compare_priors.py --from_report runs/mnist/report                # print an existing report

Training and evaluation are run_pipeline.sh's, unchanged (its environment variables carry the settings), so the
numbers are the ones the README's command produces.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from evaluation.report import comparison_table  # noqa: E402

BASELINES = ("N(0,I)", "uniform")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="ylecun/mnist")
    parser.add_argument("--epochs", type=int, default=2,
                        help="Epochs of every stage-1 model and of the PixelCNN (2: about 70 minutes on 2 CPU cores).")
    parser.add_argument("--runs_dir", default="runs/compare_priors", help="Where the runs and the report go.")
    parser.add_argument("--extra", default="", help="More flags for every stage-1 run (run_pipeline.sh's EXTRA).")
    parser.add_argument("--from_report", default=None, help="A report folder to print instead of training.")
    return parser.parse_args(argv)


def run_pipeline(args) -> str:
    environment = {**os.environ, "DATASET": args.dataset_name, "EPOCHS": str(args.epochs), "RUNS": args.runs_dir,
                   "EXTRA": args.extra}
    subprocess.run(["bash", os.path.join(REPO, "run_pipeline.sh")], env=environment, check=True, cwd=REPO)
    return os.path.join(args.runs_dir if os.path.isabs(args.runs_dir) else os.path.join(REPO, args.runs_dir), "report")


def learned_against_baseline(rows: list[dict]) -> list[dict]:
    """Per model, each learned prior's IS and FID beside its baseline's, with the differences."""
    comparisons = []
    for baseline in (row for row in rows if row["prior"] in BASELINES):
        for learned in (row for row in rows if row["model"] == baseline["model"] and row["prior"] not in BASELINES):
            comparisons.append({
                "model": baseline["model"],
                "learned": learned["prior"],
                "baseline": baseline["prior"],
                "is": (learned["is"], baseline["is"]),
                "fid": (learned["fid"], baseline["fid"]),
                "beats": learned["is"] > baseline["is"] and learned["fid"] < baseline["fid"],
            })
    return comparisons


def main(argv=None) -> None:
    args = parse_args(argv)
    report_dir = args.from_report or run_pipeline(args)
    with open(os.path.join(report_dir, "report.json")) as file:
        report = json.load(file)
    setup, ceiling = report["setup"], report["real_test_split"]
    print(f"\n{setup['dataset']}: {setup['num_samples']} samples per row against {setup['num_test_images']} test images, "
          f"features from {setup['feature_extractor']}. Real test split IS (ceiling): {ceiling['is']:.2f}\n")
    print(comparison_table(report["rows"]))
    print("\nlearned prior vs baseline (IS higher is better, FID lower is better)")
    print(f"{'model':>14} {'learned':>9} {'baseline':>9} | {'IS learned':>10} {'IS base':>8} {'ΔIS':>7} | "
          f"{'FID learned':>11} {'FID base':>9} {'ΔFID':>8} | beats both")
    for c in learned_against_baseline(report["rows"]):
        print(f"{c['model']:>14} {c['learned']:>9} {c['baseline']:>9} | {c['is'][0]:>10.2f} {c['is'][1]:>8.2f} "
              f"{c['is'][0] - c['is'][1]:>+7.2f} | {c['fid'][0]:>11.2f} {c['fid'][1]:>9.2f} "
              f"{c['fid'][0] - c['fid'][1]:>+8.2f} | {'yes' if c['beats'] else 'NO'}")


if __name__ == "__main__":
    main()
