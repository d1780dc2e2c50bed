"""twostage and pythae 0.1.2 side by side on real MNIST, in one run on one machine: pythae at the benchmark's
matched settings and at its own documented ones.

    pip install -e ".[bench]"                                 # pythae 0.1.2, only for this benchmark
    python benchmarks/vs_pythae.py --quick --seeds 0 1 2      # the README's figures: 5.5 min a seed, 2 loaded cores
    python benchmarks/vs_pythae.py                            # all 60,000 images, one seed
    python benchmarks/vs_pythae.py --device cuda              # the same on a GPU

Both libraries train the same encoder and decoder (ours, wrapped as pythae encoders and decoders) from the same
initial weights, with the same latent size, codebook size, batch size, optimizer (AdamW, constant learning rate)
and number of epochs, on the same images. What differs is each library's own: its training loop and data path,
its losses (pythae's VQ-VAE has an MSE reconstruction loss and no codebook initialisation or dead-code restarts),
its PixelCNN (ours: the gated PixelCNN, 8 layers of kernel 3; pythae's: masked convolutions, its default 10
layers of kernel 5, both 64 channels wide) and its samplers. A third column, "pythae, own", trains pythae's VAE,
VQ-VAE + PixelCNN and VAMP on the same networks, data and epochs at its MNIST config's batch size, optimizer and
loss, with its EMA codebook (benchmarks/pythae_runs.py, OWN_SETTINGS, says where each comes from).

One table, each figure as mean ± std over --seeds (the whole benchmark once per seed, in WORKDIR/seed-S) and the
advantage of twostage from the means (>1: twostage better):
1. stage-1 training throughput, images/s, VAE, VQ-VAE and VampPrior VAE;   2. PixelCNN training throughput, codes/s;
3. seconds to sample --num_samples images from VQ-VAE + PixelCNN, from VAE + N(0, I) and from the VampPrior VAE;
4. IS, FID, precision and recall (the project's MNIST classifier as feature extractor, against as many test images)
   of VAE + N(0, I), VAE + Gaussian mixture prior, VQ-VAE + PixelCNN, the VAE + latent priors fitted to its latents
   for --latent_prior_epochs at the same batch size and learning rate (MAF and two-stage VAE: both; IAF: pythae
   only; neural spline flow: twostage only), and the VampPrior VAE from its own prior; and, to read VQ-VAE +
   PixelCNN, how well each VQ-VAE reconstructs test images and how many of its codes they use;
5. peak memory of each run: every run is a process of its own (peak RSS on CPU, torch's peak allocation on CUDA).
Training throughput leaves out the first --warmup_steps steps and the first step of every epoch (benchmarks/
step_clock.py). On a CPU two runs go at the same time (twostage's beside pythae's of the same kind; pythae's
own-settings runs beside each other), each with half the cores, so that a change in the machine's load (a shared
machine, a CI runner) hits both alike; --no-side_by_side runs them one after another with all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import safetensors.torch
import torch

from stage1_autoencoders.data import load_image_data

MNIST = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"))
# "pythae_own": pythae at its own documented settings (pythae_runs.OWN_SETTINGS), beside it at the matched ones.
LIBRARIES = ("twostage", "pythae", "pythae_own")
COLUMNS = {"twostage": "twostage", "pythae": "pythae", "pythae_own": "pythae, own"}
RUNS = ("vae", "vqvae", "prior", "latent_priors", "vamp")
# The runs of each step go side by side; "prior" reads the VQ-VAE that "vqvae" saved, "latent_priors" the VAE
# that "vae" saved. pythae's own-settings runs pair with each other.
STEPS = (
    (("twostage", "vae"), ("pythae", "vae")),
    (("twostage", "vqvae"), ("pythae", "vqvae")),
    (("twostage", "prior"), ("pythae", "prior")),
    (("twostage", "latent_priors"), ("pythae", "latent_priors")),
    (("twostage", "vamp"), ("pythae", "vamp")),
    (("pythae_own", "vae"), ("pythae_own", "vqvae")),
    (("pythae_own", "prior"), ("pythae_own", "vamp")),
)
QUICK = {"max_train_samples": 6000, "epochs": 1, "prior_train_samples": 2000, "prior_epochs": 1, "latent_prior_epochs": 3,
         "num_samples": 500}
FULL = {"max_train_samples": None, "epochs": 1, "prior_train_samples": None, "prior_epochs": 1, "latent_prior_epochs": 3,
        "num_samples": 1000}
SAMPLE_SETS = {"vae_normal": "VAE + N(0,I)", "vae_mixture": "VAE + mixture", "vqvae_pixelcnn": "VQ-VAE + PixelCNN",
               "vae_maf": "VAE + MAF", "vae_iaf": "VAE + IAF", "vae_nsf": "VAE + NSF",
               "vae_two_stage_vae": "VAE + two-stage VAE", "vamp": "VampPrior VAE"}
# What a library lacks, said in its cell rather than pairing the row with something else.
ABSENT = {("twostage", "vae_iaf"): "no IAF", ("pythae", "vae_nsf"): "no NSF"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"A short run: {QUICK['max_train_samples']:,} training images, {QUICK['epochs']} epoch; the "
                             f"PixelCNNs {QUICK['prior_epochs']} epoch on {QUICK['prior_train_samples']:,} of them; the latent priors "
                             f"{QUICK['latent_prior_epochs']} epochs; "
                             f"{QUICK['num_samples']} samples.")
    parser.add_argument("--dataset_name", default=MNIST, help="MNIST in the Hub's parquet layout (../shared/data/mnist).")
    parser.add_argument("--max_train_samples", type=int, default=None, help="Train on the first N images (default: all; --quick: 6,000).")
    parser.add_argument("--epochs", type=int, default=None, help=f"Stage-1 epochs (default {FULL['epochs']}; --quick {QUICK['epochs']}).")
    parser.add_argument("--prior_train_samples", type=int, default=None,
                        help=f"Train the PixelCNNs on the codes of the first N training images (default: all of them; "
                             f"--quick: {QUICK['prior_train_samples']:,}).")
    parser.add_argument("--prior_epochs", type=int, default=None,
                        help=f"PixelCNN epochs (default {FULL['prior_epochs']}; --quick {QUICK['prior_epochs']}).")
    parser.add_argument("--latent_prior_epochs", type=int, default=None,
                        help=f"Epochs of the latent priors fitted to the VAE's latents, both libraries (default "
                             f"{FULL['latent_prior_epochs']}; --quick {QUICK['latent_prior_epochs']}).")
    parser.add_argument("--pseudo_inputs", type=int, default=50,
                        help="VampPrior VAE pseudo-inputs, both libraries (pythae's MNIST config: 50).")
    parser.add_argument("--batch_size", type=int, default=64, help="Training batch size of both libraries (both default to 64).")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="AdamW's learning rate, constant, for both.")
    parser.add_argument("--hidden_channels", type=int, nargs="+", default=[32, 64], help="Encoder/decoder widths (ours, for both).")
    parser.add_argument("--latent_dim", type=int, default=16, help="VAE latent size.")
    parser.add_argument("--num_embeddings", type=int, default=64, help="VQ-VAE codebook size K.")
    parser.add_argument("--embedding_dim", type=int, default=16, help="VQ-VAE code vector size.")
    parser.add_argument("--ema_decay", type=float, default=0.0,
                        help="VQ-VAE codebook of the matched runs: EMA updates when > 0. Off by default, as in pythae's "
                             "MNIST config; the 'pythae, own' column uses pythae's EMA codebook (pythae_runs.OWN_SETTINGS).")
    parser.add_argument("--num_samples", type=int, default=None,
                        help=f"Images sampled per model, timed and scored (default {FULL['num_samples']:,}; --quick {QUICK['num_samples']}).")
    parser.add_argument("--sample_batch_size", type=int, default=500, help="Sampling batch size of both (pythae's default).")
    parser.add_argument("--mixture_components", type=int, default=10, help="Gaussians in both mixture priors.")
    parser.add_argument("--warmup_steps", type=int, default=5, help="Untimed training steps at the start of each run.")
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True,
                        help="twostage: train in channels_last memory order (train.py's --channels_last, its default).")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                        help="twostage: torch.compile the training steps (inductor). Off by default: on CPU it gains no "
                             "more than channels_last alone (benchmarks/stage1_throughput.py) and costs a minute to compile.")
    parser.add_argument("--side_by_side", action=argparse.BooleanOptionalAction, default=None,
                        help="Run the two libraries' runs of each kind at the same time, so that load from anything else "
                             "on the machine hits both alike (default: on for --device cpu, off for cuda, where they "
                             "would share one GPU).")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads in every run (default: half the cores side by side, else torch's choice).")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="Run the whole benchmark once per seed (in WORKDIR/seed-S) and print every figure as mean ± "
                             "std over them (default: --seed alone).")
    parser.add_argument("--workdir", default=None, help="Keep the runs' models, samples and logs here (default: a temporary folder).")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # LIBRARY:RUN, started by the main process
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.side_by_side is None:
        args.side_by_side = args.device == "cpu"
    if args.threads is None and args.side_by_side:
        args.threads = max(1, (os.cpu_count() or 2) // 2)
    if args.seeds is None:
        args.seeds = [args.seed]
    return args


def settings_of(args: argparse.Namespace) -> dict:
    names = ("dataset_name", "max_train_samples", "epochs", "prior_train_samples", "prior_epochs", "latent_prior_epochs",
             "pseudo_inputs", "batch_size",
             "learning_rate", "hidden_channels", "latent_dim", "num_embeddings", "embedding_dim", "ema_decay",
             "num_samples", "sample_batch_size",
             "mixture_components", "warmup_steps", "channels_last", "compile", "side_by_side", "threads", "device", "seed")
    return {name: getattr(args, name) for name in names}


def run_worker(spec: str, workdir: str) -> None:
    """One run, in this process: its figures go to WORKDIR/LIBRARY-RUN.json, its samples beside them."""
    library, run = spec.split(":")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from step_clock import peak_memory_mib, reset_peak_memory

    with open(os.path.join(workdir, "settings.json")) as file:
        settings = json.load(file)
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    if library in ("pythae", "pythae_own"):
        import pythae_runs as runs  # pythae is imported only where it runs

        settings = runs.with_pythae_knobs(settings, own=library == "pythae_own")
    else:
        import twostage_runs as runs
    max_train_samples = settings["max_train_samples"]
    if run == "prior" and settings["prior_train_samples"]:
        max_train_samples = min(max_train_samples or settings["prior_train_samples"], settings["prior_train_samples"])
    data = load_image_data(settings["dataset_name"], max_train_samples=max_train_samples)
    reset_peak_memory(settings["device"])
    result = runs.RUNS[run](settings, data, workdir)
    samples = result.pop("samples", {})
    if samples:
        from evaluation.fidelity import to_uint8

        safetensors.torch.save_file({name: to_uint8(images) for name, images in samples.items()},
                                    os.path.join(workdir, f"{library}-{run}-samples.safetensors"))
    result["peak_memory_mib"] = peak_memory_mib(settings["device"])
    with open(os.path.join(workdir, f"{library}-{run}.json"), "w") as file:
        json.dump(result, file)


def run_all(settings: dict, workdir: str) -> dict:
    env = dict(os.environ)
    if settings["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # pythae's samplers move the model to any GPU they see
    results = {}
    for number, step in enumerate(STEPS, start=1):
        load = os.getloadavg()[0]
        names = " + ".join(f"{library} {run}" for library, run in step)
        print(f"[{number}/{len(STEPS)}] {names} (load average {load:.1f}) ...", end=" ", flush=True)
        if settings["side_by_side"]:
            started = {spec: _start(*spec, workdir, env) for spec in step}
            finished = {spec: _finish(*spec, workdir, *started[spec]) for spec in step}
        else:
            finished = {spec: _finish(*spec, workdir, *_start(*spec, workdir, env)) for spec in step}
        for (library, run), seconds in finished.items():
            with open(os.path.join(workdir, f"{library}-{run}.json")) as file:
                results[library, run] = json.load(file) | {"load_average": load}
        print(", ".join(f"{seconds:.0f} s" for seconds in finished.values()), flush=True)
    return results


def _start(library: str, run: str, workdir: str, env: dict):
    log = open(os.path.join(workdir, f"{library}-{run}.log"), "w")
    command = [sys.executable, os.path.abspath(__file__), "--worker", f"{library}:{run}", "--workdir", workdir]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log, time.perf_counter()


def _finish(library: str, run: str, workdir: str, process: subprocess.Popen, log, started: float) -> float:
    """Waits for a run; its wall time in seconds, or the end of its log if it failed."""
    returncode = process.wait()
    seconds = time.perf_counter() - started
    log.close()
    if returncode != 0:
        with open(log.name) as file:
            tail = file.read()[-3000:]
        raise SystemExit(f"\nThe {library} {run} run failed (exit {returncode}); the end of {log.name}:\n{tail}")
    return seconds


def score_samples(settings: dict, workdir: str) -> dict:
    """IS, FID, precision and recall of every sample set against as many real test images (equal counts, as
    precision and recall assume), and the IS of those real images: the ceiling. The classifier is the project's
    own for this dataset, trained once per machine and cached (evaluation/train_classifier.py)."""
    from evaluation.fidelity import fidelity_metrics
    from evaluation.train_classifier import trained_classifier_folder

    data = load_image_data(settings["dataset_name"])
    classifier = trained_classifier_folder(settings["dataset_name"], data=data)
    real = data.test_images[: settings["num_samples"]]
    scores = {}
    for library, run in (spec for step in STEPS for spec in step):
        path = os.path.join(workdir, f"{library}-{run}-samples.safetensors")
        if not os.path.exists(path):  # a run with no samples (the VQ-VAE's)
            continue
        for name, images in safetensors.torch.load_file(path).items():
            scores[library, name] = fidelity_metrics(images, real, metrics=("isc", "fid", "prc"),
                                                     feature_extractor_weights_path=classifier, seed=settings["seed"])
    scores["real"] = fidelity_metrics(real, metrics=("isc",), feature_extractor_weights_path=classifier, seed=settings["seed"])
    return scores


def figure_rows(settings: dict, results: dict, scores: dict) -> list:
    """One seed's figures: [figure, {library: value}, higher is better, format] rows; a library without the
    figure has no entry, a score withheld at this N (evaluation.fidelity says why) is None."""
    rows = []

    def add(figure, run, key, higher_better, fmt):
        rows.append([figure, {library: results[library, run][key] for library in LIBRARIES if (library, run) in results},
                     higher_better, fmt])

    n = f"{settings['num_samples']:,}"
    for run, figure, key, higher_better, fmt in (
        ("vae", "stage-1 training, VAE (images/s)", "train_per_second", True, ".0f"),
        ("vqvae", "stage-1 training, VQ-VAE (images/s)", "train_per_second", True, ".0f"),
        ("vamp", "stage-1 training, VampPrior VAE (images/s)", "train_per_second", True, ".0f"),
        ("prior", "PixelCNN training (codes/s)", "train_per_second", True, ".0f"),
        ("prior", f"sample {n}, VQ-VAE + PixelCNN (s)", "sample_seconds", False, ".2f"),
        ("vae", f"sample {n}, VAE + N(0,I) (s)", "sample_seconds", False, ".3f"),
        ("vamp", f"sample {n}, VampPrior VAE (s)", "sample_seconds", False, ".3f"),
        ("vqvae", "VQ-VAE test reconstruction (sq. error/image)", "reconstruction_error", False, ".2f"),
        ("vqvae", f"VQ-VAE codes in use on test images (of {settings['num_embeddings']})", "codes_used", True, ".0f"),
    ):
        add(figure, run, key, higher_better, fmt)
    for name, label in SAMPLE_SETS.items():
        for key, metric, higher_better, fmt in (("is", "IS", True, ".2f"), ("fid", "FID", False, ".2f"),
                                                ("precision", "precision", True, ".3f"), ("recall", "recall", True, ".3f")):
            rows.append([f"{metric}, {label}", {library: scores[library, name][key] for library in LIBRARIES
                                                if (library, name) in scores}, higher_better, fmt])
    memory = "peak GPU memory" if settings["device"] == "cuda" else "peak RSS"
    for run, label in (("vae", "VAE run"), ("vqvae", "VQ-VAE run"), ("prior", "PixelCNN run"),
                       ("latent_priors", "latent priors run"), ("vamp", "VampPrior VAE run")):
        add(f"{memory}, {label} (MiB)", run, "peak_memory_mib", False, ".0f")
    return rows


def seed_figures(settings: dict, results: dict, scores: dict, seconds: float) -> dict:
    """What one seed's run leaves in its folder (figures.json) for the table over seeds."""
    return {"settings": settings, "rows": figure_rows(settings, results, scores), "real": scores["real"],
            "minutes": seconds / 60, "load_average": {f"{library} {run}": result["load_average"]
                                                      for (library, run), result in results.items()}}


def mean_and_std(values: list) -> tuple[float | None, float | None]:
    """Over seeds; None if any seed withheld the figure. The std is the sample std (0 for one seed)."""
    if any(value is None for value in values):
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(per_seed: list[dict]) -> list:
    """[figure, {library: (mean, std)}, higher is better, format] over seeds, from each seed's figures.json; a
    library's cell only where every seed has it. The seeds must share one protocol: the same settings but the seed."""
    reference = {name: value for name, value in per_seed[0]["settings"].items() if name != "seed"}
    for figures in per_seed[1:]:
        differing = sorted(name for name, value in reference.items() if figures["settings"].get(name) != value)
        if differing:
            raise SystemExit(f"The seeds' runs differ in {', '.join(differing)}; run every seed with the same flags.")
    table = []
    for index, (figure, _, higher_better, fmt) in enumerate(per_seed[0]["rows"]):
        seed_rows = [figures["rows"][index][1] for figures in per_seed]
        cells = {library: mean_and_std([row[library] for row in seed_rows])
                 for library in LIBRARIES if all(library in row for row in seed_rows)}
        table.append([figure, cells, higher_better, fmt])
    return table


def _cell(cell, fmt: str, absent: str) -> str:
    if cell is None:
        return absent
    mean, std = cell
    if mean is None:
        return "withheld"
    return f"{mean:{fmt}} ± {std:{fmt}}"


def _advantage(cells: dict, theirs: str, higher_better: bool) -> str:
    if "twostage" not in cells or theirs not in cells or None in (cells["twostage"][0], cells[theirs][0]):
        return "n/a"
    ours_mean, their_mean = cells["twostage"][0], cells[theirs][0]
    numerator, denominator = (ours_mean, their_mean) if higher_better else (their_mean, ours_mean)
    return f"{numerator / denominator:.2f}x" if denominator > 0 else "n/a"  # e.g. a recall of 0


def print_table(per_seed: list[dict], seconds: float) -> None:
    settings = per_seed[0]["settings"]
    seeds = " ".join(str(figures["settings"]["seed"]) for figures in per_seed)
    table = aggregate(per_seed)
    device = torch.cuda.get_device_name() if settings["device"] == "cuda" else f"CPU ({os.cpu_count()} cores)"
    images = f"{settings['max_train_samples']:,}" if settings["max_train_samples"] else "all 60,000"
    prior_images = f" of the first {settings['prior_train_samples']:,} images" if settings["prior_train_samples"] else ""
    n = f"{settings['num_samples']:,}"
    print()
    print(f"command: python benchmarks/vs_pythae.py {' '.join(sys.argv[1:])}".rstrip())
    together = "runs side by side in pairs, " if settings["side_by_side"] else ""
    print(f"device: {device}, {together}{settings['threads'] or torch.get_num_threads()} torch threads each; torch {torch.__version__}, "
          f"pythae {_pythae_version()}; total {seconds / 60:.1f} min for {len(per_seed)} seed(s)")
    print(f"seeds {seeds}: every figure is the mean ± std over them (advantage: from the means); {n} samples per set, "
          f"scored against {n} test images")
    print(f"MNIST, {images} training images; stage 1: {_epochs(settings['epochs'])}, PixelCNN: "
          f"{_epochs(settings['prior_epochs'])}{prior_images}, latent priors: {_epochs(settings['latent_prior_epochs'])}; "
          f"matched: batch {settings['batch_size']}, AdamW lr {settings['learning_rate']:g} constant; encoder/decoder widths "
          f"{settings['hidden_channels']}, latent {settings['latent_dim']}, codebook {settings['num_embeddings']}x"
          f"{settings['embedding_dim']} (EMA decay {settings['ema_decay']:g}), {settings['pseudo_inputs']} pseudo-inputs; "
          f"twostage options: channels_last={settings['channels_last']}, compile={settings['compile']}")
    print("pythae, own: pythae's MNIST config on the same networks and epochs: batch 100, Adam lr 0.001, MSE "
          "reconstruction loss, EMA codebook (decay 0.99); the latent samplers run on the matched VAE only")
    width = max(len(row[0]) for row in table) + 2
    columns = [COLUMNS[library] for library in LIBRARIES] + ["vs pythae", "vs own"]
    header = f"{'figure':<{width}}" + "".join(f"{column:>19}" for column in columns)
    print(header)
    print("-" * len(header))
    for figure, cells, higher_better, fmt in table:
        sample_set = next((name for name, label in SAMPLE_SETS.items() if figure.endswith(f", {label}")), None)
        shown = [_cell(cells.get(library), fmt, ABSENT.get((library, sample_set), "-")) for library in LIBRARIES]
        shown += [_advantage(cells, "pythae", higher_better), _advantage(cells, "pythae_own", higher_better)]
        print(f"{figure:<{width}}" + "".join(f"{value:>19}" for value in shown))
    print("advantage: twostage / pythae where higher is better, pythae / twostage where lower is; >1: twostage better. "
          "-: not run.")
    ceilings = [figures["real"]["is"] for figures in per_seed]
    mean, std = mean_and_std(ceilings)
    ceiling = "withheld" if mean is None else f"{mean:.2f} ± {std:.2f}"
    real = per_seed[0]["real"]
    print(f"IS over {real['is_splits']} splits of {real['is_split_size']} samples (evaluation.fidelity's protocol), for "
          f"every sample set and for {n} real test images (the ceiling): {ceiling}. "
          + "".join(f"{key.upper()} withheld: {reason}. " for key, reason in real["withheld"].items())
          + "Load averages at the start of each seed's runs: "
          + "; ".join(f"seed {figures['settings']['seed']}: " + " ".join(f"{load:.1f}" for load in dict.fromkeys(figures["load_average"].values()))
                      for figures in per_seed))


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _pythae_version() -> str:
    from importlib.metadata import version

    return version("pythae")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.workdir)
    if not os.path.isdir(args.dataset_name):
        raise SystemExit(
            f"MNIST is not at {args.dataset_name}. This benchmark compares the libraries on real MNIST; give a local "
            f"copy in the Hub's parquet layout with --dataset_name (the project keeps one at ../shared/data/mnist)."
        )
    try:
        _pythae_version()
        import pythae  # noqa: F401  (checks that it imports, not only that it is installed)
    except ImportError as error:
        raise SystemExit(f"pythae is not importable ({error}); install the benchmark extra: pip install -e \".[bench]\"")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device; run with --device cpu.")
    workdir = args.workdir or tempfile.mkdtemp(prefix="vs_pythae-")
    started = time.perf_counter()
    per_seed = []
    for seed in args.seeds:
        args.seed = seed
        settings = settings_of(args)
        seed_dir = os.path.join(workdir, f"seed-{seed}")
        os.makedirs(seed_dir, exist_ok=True)
        with open(os.path.join(seed_dir, "settings.json"), "w") as file:
            json.dump(settings, file)
        print(f"seed {seed}:", flush=True)
        seed_started = time.perf_counter()
        results = run_all(settings, seed_dir)
        print("scoring the samples ...", end=" ", flush=True)
        scoring_started = time.perf_counter()
        scores = score_samples(settings, seed_dir)
        print(f"{time.perf_counter() - scoring_started:.0f} s", flush=True)
        figures = seed_figures(settings, results, scores, time.perf_counter() - seed_started)
        with open(os.path.join(seed_dir, "figures.json"), "w") as file:
            json.dump(figures, file)
        per_seed.append(figures)
    print_table(per_seed, time.perf_counter() - started)
    print(f"models, samples, logs and each seed's figures.json: {workdir}")


if __name__ == "__main__":
    main()
