"""Every learned prior of the continuous models and every quantizer, side by side, mean ± std over seeds.

    python benchmarks/compare_latent_priors_and_quantizers.py --dataset_name ../shared/data/mnist --seeds 0 1 2
    python benchmarks/compare_latent_priors_and_quantizers.py --from_runs runs/latent_priors     # print again

Per seed, with the project's own scripts and their default flags unless set here: a VAE with N(0, I) and, fitted
to its aggregate posterior, a Gaussian mixture, a MAF, a neural spline flow and the two-stage VAE's second VAE; a
VampPrior VAE with its own prior; VQ-VAEs with VQ-EMA, VQ + rotation trick and FSQ at 64, 256 and 1,000 codes,
each with a PixelCNN over its codes. Then one evaluation report per seed (evaluation/evaluate.py, the same test
images, sample count and classifier for every row), whose rows are aggregated here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONTINUOUS = {"vae": ["--model", "vae"], "vamp_vae": ["--model", "vamp_vae"]}
QUANTIZERS = {
    "vq_ema": [],
    "vq_rotation": ["--rotation_trick"],
    "fsq_64": ["--fsq_levels", "8", "8"],
    "fsq_256": ["--fsq_levels", "8", "8", "4"],  # levels 4 is even: codes at -1, -0.5, 0, 0.5
    "fsq_1000": ["--fsq_levels", "8", "5", "5", "5"],
}
LATENT_PRIORS = ("maf", "nsf", "two_stage_vae")
COLUMNS = (("is", "IS"), ("fid", "FID"), ("nll", "NLL"), ("reconstruction_mse", "recon. MSE"))
CODE_COLUMNS = (("codebook_usage", "code usage"), ("perplexity", "perplexity"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs_dir", default="runs/latent_priors")
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Test images (and samples per row).")
    parser.add_argument("--stage1_steps", type=int, default=400)
    parser.add_argument("--prior_steps", type=int, default=400)
    parser.add_argument("--hidden_channels", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--pixelcnn_channels", type=int, default=32, help="The PixelCNNs' channels (train.py: 64).")
    parser.add_argument("--pixelcnn_layers", type=int, default=5, help="The PixelCNNs' layers (train.py: 8).")
    parser.add_argument("--latent_dim", type=int, default=8)
    parser.add_argument("--likelihood", default=None, help="Default: gaussian for digits, bernoulli otherwise.")
    parser.add_argument("--num_importance_samples", type=int, default=32)
    parser.add_argument("--from_runs", default=None, help="Print the table of runs made earlier.")
    return parser.parse_args(argv)


def run(*command: str) -> None:
    env = {**os.environ, "ACCELERATE_USE_CPU": os.environ.get("ACCELERATE_USE_CPU", "1"), "PYTHONPATH": REPO}
    print("+", " ".join(command), flush=True)
    subprocess.run([sys.executable, *command], check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)


def train_seed(args, seed: int) -> str:
    folder = os.path.join(args.runs_dir, f"seed-{seed}")
    likelihood = args.likelihood or ("gaussian" if args.dataset_name == "digits" else "bernoulli")
    data = ["--dataset_name", args.dataset_name, "--seed", str(seed)]
    data += ["--max_train_samples", str(args.max_train_samples)] if args.max_train_samples else []
    data += ["--max_eval_samples", str(args.max_eval_samples)] if args.max_eval_samples else []
    stage1 = [*data, "--hidden_channels", *map(str, args.hidden_channels), "--likelihood", likelihood,
              "--max_train_steps", str(args.stage1_steps), "--checkpointing_steps", "100000"]
    prior = [*data, "--max_train_steps", str(args.prior_steps), "--checkpointing_steps", "100000"]
    sources = []
    for name, flags in {**CONTINUOUS, **{q: ["--model", "vqvae", *f] for q, f in QUANTIZERS.items()}}.items():
        out = os.path.join(folder, name)
        if not os.path.isfile(os.path.join(out, "model.safetensors")):
            run("stage1_autoencoders/train.py", *flags, *stage1, "--latent_dim", str(args.latent_dim), "--output_dir", out)
        sources.append(out)
        if name in QUANTIZERS:
            out_prior = out + "-pixelcnn"
            if not os.path.isfile(os.path.join(out_prior, "model.safetensors")):
                run("stage2_prior/train.py", "--vqvae", out, *prior, "--codes_cache_dir", "", "--output_dir", out_prior,
                    "--hidden_channels", str(args.pixelcnn_channels), "--num_layers", str(args.pixelcnn_layers))
            sources.append(out_prior)
    vae = os.path.join(folder, "vae")
    for latent_prior in LATENT_PRIORS:
        out = os.path.join(folder, f"vae-{latent_prior}")
        if not os.path.isfile(os.path.join(out, "model.safetensors")):
            run("stage2_prior/fit_latent_prior.py", "--autoencoder", vae, "--prior", latent_prior, *prior, "--output_dir", out)
        sources.append(out)
    mixture = os.path.join(folder, "vae-gmm")
    if not os.path.isfile(os.path.join(mixture, "model.safetensors")):
        run("-m", "stage2_prior.fit_mixture", "--autoencoder", vae, "--seed", str(seed), "--output_dir", mixture,
            *(["--max_train_samples", str(args.max_train_samples)] if args.max_train_samples else []))
    sources.append(mixture)
    report = os.path.join(folder, "report")
    if not os.path.isfile(os.path.join(report, "report.json")):
        run("-m", "evaluation.evaluate", *sources, "--output_dir", report, "--seed", str(seed), "--tsne_points", "100",
            "--num_importance_samples", str(args.num_importance_samples),
            *(["--max_eval_samples", str(args.max_eval_samples)] if args.max_eval_samples else []))
    return os.path.join(report, "report.json")


def mean_std(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def table(reports: list[dict]) -> str:
    """Rows model x prior; each cell the mean ± std over the seeds' reports."""
    cells: dict[tuple[str, str], dict[str, list]] = {}
    for report in reports:
        for row in report["rows"]:
            metrics = report["models"][row["model"]]["metrics"]
            prior_key = row["prior"] if row["prior"] in ("N(0,I)", "uniform", "VampPrior") else row["prior"].split(" (")[0]
            cell = cells.setdefault((row["model"], prior_key), {})
            for key, _ in COLUMNS:
                cell.setdefault(key, []).append(row.get(key))
            for key, _ in CODE_COLUMNS:
                cell.setdefault(key, []).append(metrics.get(key))
            cell.setdefault("nll_unit", []).append(row.get("nll_unit"))
    header = ["model", "prior", *(title for _, title in COLUMNS), "NLL unit", *(title for _, title in CODE_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (model, prior), cell in cells.items():
        values = [mean_std(cell[key]) for key, _ in COLUMNS]
        unit = next((u for u in cell["nll_unit"] if u), "")
        values += [unit, *(mean_std(cell[key]) for key, _ in CODE_COLUMNS)]
        lines.append("| " + " | ".join([model, prior, *values]) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.from_runs:
        paths = sorted(os.path.join(args.from_runs, seed, "report", "report.json") for seed in os.listdir(args.from_runs))
    else:
        paths = [train_seed(args, seed) for seed in args.seeds]
    reports = [json.load(open(path)) for path in paths if os.path.isfile(path)]
    setup = reports[0]["setup"]
    print(f"{setup['dataset']}: {setup['num_test_images']} test images, {setup['num_samples']} samples per row, "
          f"{len(reports)} seed(s), real test split IS {mean_std([r['real_test_split']['is'] for r in reports])}")
    print(table(reports))


if __name__ == "__main__":
    main()
