"""Time to quality: twostage and pythae 0.1.2 trained side by side on MNIST, each at its own defaults, and the
training time each needs to reach the same test NLL and the same sample FID.

    pip install -e ".[bench]"                               # pythae 0.1.2, only for the benchmarks
    python benchmarks/time_to_quality.py --quick --seeds 0 1 2
    python benchmarks/time_to_quality.py                    # all 60,000 images, 3 epochs, one seed
    python benchmarks/time_to_quality.py --quick --seeds 0 1 2 --from_workdir WORKDIR    # print an earlier run again

Two contests, each two processes side by side (one a library, half the cores each, so that load from anything
else on the machine hits both alike), each evaluated at the same fractions of the same budget of epochs:
1. PixelCNN. Both priors learn the same codes: the grids of one VQ-VAE of ours, trained once per seed at train.py's
   defaults and shared, so the contest is the prior's alone. Figures: the test NLL in bits per code, and the FID of
   --num_samples samples decoded by that VQ-VAE. twostage: stage2_prior/train.py's defaults (gated PixelCNN, its
   batch size, AdamW, learning rate and cosine schedule over the budget) and its train_step; pythae: the PixelCNN its
   PixelCNNSampler builds (its defaults: 10 masked layers of kernel 5) trained by its BaseTrainer as
   PixelCNNSampler.fit trains it, at pythae's MNIST settings, and sampled by its sampler's loop.
2. VAE + mixture. Each library's VAE on the same networks (ours) from the same initial weights: ours at
   stage1_autoencoders/train.py's defaults (Bernoulli likelihood, batch, AdamW, cosine schedule) and its train_step;
   pythae's through its TrainingPipeline at its MNIST settings (pythae_runs.OWN_SETTINGS: batch 100, Adam, MSE).
   Figure: the FID of --num_samples samples from a mixture of --mixture_components Gaussians fitted to the
   training latents (ours: stage2_prior's MixturePrior; pythae: its GaussianMixtureSampler).
FID is evaluation.fidelity's (the project's MNIST classifier as feature extractor) against as many test images.

Training time is each process's wall clock from the end of its first optimizer step, every later step and epoch
boundary included (pythae's trainer's per-epoch copy of its best model too; ours runs train.py's step without its
checkpoints and per-epoch test pass, as stage1_loop.py and prior_loop.py do), the evaluations left out (the clock
stops for them). The
target of a figure is the worse of the two libraries' final values, so that both reach it; the time to reach it is
interpolated linearly between the evaluations around its first crossing. A library that reaches it by the first
evaluation is shown as "<=" that time. The speed-up is pythae's time over ours (>1: twostage is faster), a bound
(">=" or "<=") where one of the times is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project, for scripts in benchmarks/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the benchmarks' own modules

import safetensors.torch
import torch
import torch.nn.functional as F

from stage1_autoencoders.data import load_image_data, to_float

MNIST = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"))
LIBRARIES = ("twostage", "pythae")
CONTESTS = ("pixelcnn", "vae_mixture")
# Where in the budget both libraries are evaluated: denser early, where the curves fall fastest.
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1)
FIGURES = (("pixelcnn", "nll", "PixelCNN test NLL (bits/code)", ".4f"), ("pixelcnn", "fid", "FID, VQ-VAE + PixelCNN", ".2f"),
           ("vae_mixture", "fid", "FID, VAE + mixture", ".2f"))
QUICK = {"max_train_samples": 10000, "epochs": 3, "prior_epochs": 3, "num_samples": 1000}
FULL = {"max_train_samples": None, "epochs": 3, "prior_epochs": 3, "num_samples": 2000}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"A short run: {QUICK['max_train_samples']:,} training images, {QUICK['epochs']} epochs each, "
                             f"{QUICK['num_samples']:,} samples per FID.")
    parser.add_argument("--dataset_name", default=MNIST, help="MNIST in the Hub's parquet layout (../shared/data/mnist).")
    parser.add_argument("--max_train_samples", type=int, default=None, help="Train on the first N images (default: all).")
    parser.add_argument("--epochs", type=int, default=None, help=f"Budget of the VAEs, in epochs (default {FULL['epochs']}).")
    parser.add_argument("--prior_epochs", type=int, default=None,
                        help=f"Budget of the PixelCNNs, in epochs (default {FULL['prior_epochs']}).")
    parser.add_argument("--vqvae_epochs", type=int, default=1, help="Epochs of the shared VQ-VAE whose codes both PixelCNNs learn.")
    parser.add_argument("--num_samples", type=int, default=None,
                        help=f"Samples per FID, against as many test images (default {FULL['num_samples']:,}).")
    parser.add_argument("--hidden_channels", type=int, nargs="+", default=[32, 64], help="Encoder/decoder widths (both).")
    parser.add_argument("--latent_dim", type=int, default=16, help="VAE latent size (both).")
    parser.add_argument("--num_embeddings", type=int, default=64, help="The shared VQ-VAE's codebook size K.")
    parser.add_argument("--embedding_dim", type=int, default=16, help="The shared VQ-VAE's code vector size.")
    parser.add_argument("--mixture_components", type=int, default=10, help="Gaussians in both mixture priors.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: half the cores).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="One whole benchmark a seed; mean ± std over them.")
    parser.add_argument("--workdir", default=None, help="Keep models, curves and logs here (default: a temporary folder).")
    parser.add_argument("--from_workdir", default=None,
                        help="Print the table of an earlier run's WORKDIR (its seed-S/rows.json) instead of training.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # LIBRARY:CONTEST, started by the main process
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 2) // 2)
    return args


class TrainingTime:
    """Seconds of training: the gaps between consecutive optimizer steps' ends, except across an evaluation."""

    def __init__(self):
        self.seconds, self._last = 0.0, None

    def step_done(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.seconds += now - self._last
        self._last = now

    def resume(self) -> None:
        """After an evaluation: the next step is timed from here."""
        self._last = time.perf_counter()


def evaluation_steps(total_steps: int) -> list[int]:
    """The steps at FRACTIONS of a run: the same fractions of each library's own step count (batch sizes differ)."""
    return sorted({max(1, round(total_steps * fraction)) for fraction in FRACTIONS})


class Scorer:
    """FID of uint8 samples against the first N test images, under the project's protocol (one Judge a process)."""

    def __init__(self, settings: dict, data):
        from evaluation.fidelity import Judge

        self.judge = Judge(feature_extractor_weights_path=settings["classifier"])
        self.real = self.judge.features(data.test_images[: settings["num_samples"]])
        self.seed = settings["seed"]

    def fid(self, images: torch.Tensor) -> float | None:
        from evaluation.fidelity import to_uint8

        return self.judge.scores(to_uint8(images), self.real, metrics=("fid",), seed=self.seed)["fid"]


def _record(curve: list, clock: TrainingTime, step: int, total_steps: int, figures: dict) -> None:
    curve.append({"step": step, "epochs": step / total_steps, "seconds": clock.seconds, **figures})
    print(f"step {step}/{total_steps}: {clock.seconds:.0f} s, " + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()
                                                                            if v is not None), flush=True)


# ---- the PixelCNN contest: the same codes -------------------------------------------------------------------------

def shared_codes(settings: dict, data, workdir: str) -> None:
    """Trains the shared VQ-VAE at train.py's defaults (cosine over its epochs) and saves it and its codes."""
    from accelerate import Accelerator

    from stage1_autoencoders.train import parse_args as stage1_args
    from stage1_loop import Stage1Loop
    from stage2_prior.codes import extract_codes

    args = stage1_args(["--model", "vqvae", "--seed", str(settings["seed"]), "--output_dir", workdir,
                        "--hidden_channels", *map(str, settings["hidden_channels"]),
                        "--num_embeddings", str(settings["num_embeddings"]), "--embedding_dim", str(settings["embedding_dim"])])
    accelerator = Accelerator(cpu=True)
    steps = settings["vqvae_epochs"] * math.ceil(len(data.train_images) / args.train_batch_size)
    loop = Stage1Loop(args, data, accelerator, total_steps=steps)
    loop.train_steps(steps)
    vqvae = loop.trained_model.eval()
    vqvae.save_pretrained(os.path.join(workdir, "vqvae"))
    codes = extract_codes(vqvae, data, accelerator, cache_dir=None)
    safetensors.torch.save_file({"train": codes.train_codes.contiguous(), "test": codes.test_codes.contiguous()},
                                os.path.join(workdir, "codes.safetensors"))


def _codes_and_vqvae(workdir: str):
    from stage1_autoencoders import VQVAE

    codes = safetensors.torch.load_file(os.path.join(workdir, "codes.safetensors"))
    return codes["train"], codes["test"], VQVAE.from_pretrained(os.path.join(workdir, "vqvae")).eval()


def twostage_pixelcnn(settings: dict, data, workdir: str) -> list:
    from accelerate import Accelerator

    from prior_loop import PriorLoop
    from stage2_prior.pixelcnn import GatedPixelCNN
    from stage2_prior.sampling import sample_images
    from stage2_prior.train import parse_args as stage2_args

    train_codes, test_codes, vqvae = _codes_and_vqvae(workdir)
    defaults = stage2_args(["--vqvae", os.path.join(workdir, "vqvae")])  # train.py's defaults, every one
    torch.manual_seed(settings["seed"])
    prior = GatedPixelCNN(num_embeddings=vqvae.num_embeddings, grid_height=test_codes.shape[1], grid_width=test_codes.shape[2],
                          hidden_channels=defaults.hidden_channels, num_layers=defaults.num_layers,
                          kernel_size=defaults.kernel_size, dilation_cycle=defaults.dilation_cycle)
    if defaults.channels_last:  # as train.py converts it
        prior = prior.to(memory_format=torch.channels_last)
    total = settings["prior_epochs"] * math.ceil(len(train_codes) / defaults.train_batch_size)
    loop = PriorLoop(prior, train_codes, Accelerator(cpu=True), defaults.train_batch_size, defaults.learning_rate,
                     settings["seed"], workdir, max_grad_norm=defaults.max_grad_norm, lr_scheduler=defaults.lr_scheduler,
                     total_steps=total)

    def evaluate(step: int) -> None:
        prior.eval()
        with torch.no_grad():
            nll = torch.cat([prior.nll_bits_per_code(batch) for batch in test_codes.split(1000)]).mean().item()
            samples = sample_images(prior, vqvae, settings["num_samples"], batch_size=500, seed=settings["seed"])
        prior.train()
        _record(curve, clock, step, total, {"nll": nll, "fid": scorer.fid(samples)})

    scorer, clock, curve = Scorer(settings, data), TrainingTime(), []
    train_with_evaluations(loop, clock, total, evaluate)
    return curve


def pythae_pixelcnn(settings: dict, data, workdir: str) -> list:
    from pythae.data.preprocessors import DataProcessor
    from pythae.models.normalizing_flows import PixelCNN, PixelCNNConfig
    from pythae.samplers import PixelCNNSamplerConfig
    from pythae.trainers import BaseTrainer

    from pythae_runs import trainer_config, with_pythae_knobs
    from stage2_prior.sampling import decode_codes

    train_codes, test_codes, vqvae = _codes_and_vqvae(workdir)
    own = with_pythae_knobs(settings, own=True)
    sampler_defaults = PixelCNNSamplerConfig()
    torch.manual_seed(settings["seed"])
    prior = PixelCNN(PixelCNNConfig(input_dim=(1, *test_codes.shape[1:]), n_embeddings=vqvae.num_embeddings,
                                    n_layers=sampler_defaults.n_layers, kernel_size=sampler_defaults.kernel_size))
    total = settings["prior_epochs"] * math.ceil(len(train_codes) / own["batch_size"])

    @torch.no_grad()
    def sample_codes(count: int) -> torch.Tensor:
        """PixelCNNSampler.sample's loop: the whole grid through the network once per position."""
        torch.manual_seed(settings["seed"])
        grids = []
        for size in [len(chunk) for chunk in torch.arange(count).split(500)]:
            z = torch.zeros(size, 1, *test_codes.shape[1:])
            for row in range(z.shape[2]):
                for column in range(z.shape[3]):
                    probabilities = F.softmax(prior({"data": z}).out.squeeze(2)[:, :, row, column], dim=-1)
                    z[:, :, row, column] = torch.multinomial(probabilities, 1).float()
            grids.append(z[:, 0].long())
        return torch.cat(grids)

    def evaluate(step: int) -> None:
        prior.eval()
        with torch.no_grad():
            nats = [F.cross_entropy(prior({"data": batch}).out, batch.long(), reduction="sum")
                    for batch in test_codes.unsqueeze(1).float().split(1000)]
        nll = torch.stack(nats).sum().item() / test_codes.numel() / math.log(2)
        samples = decode_codes(vqvae, sample_codes(settings["num_samples"]), batch_size=500)
        prior.train()
        _record(curve, clock, step, total, {"nll": nll, "fid": scorer.fid(samples)})

    scorer, clock, curve = Scorer(settings, data), TrainingTime(), []
    callback = evaluating_callback(clock, evaluation_steps(total), evaluate)
    with tempfile.TemporaryDirectory(dir=workdir) as output_dir:
        trainer = BaseTrainer(model=prior, train_dataset=DataProcessor().to_dataset(train_codes.unsqueeze(1).float()),
                              training_config=trainer_config(own, settings["prior_epochs"], output_dir), callbacks=[callback])
        trainer.train()
    return curve


def train_with_evaluations(loop, clock: TrainingTime, total_steps: int, evaluate) -> None:
    """Our loops (Stage1Loop, PriorLoop) one optimizer step at a time: the clock ticks after every step and stops
    for evaluate(step) at evaluation_steps, as evaluating_callback does for pythae's trainer."""
    evaluations = set(evaluation_steps(total_steps))
    for step in range(1, total_steps + 1):
        loop.train_steps(1)
        clock.step_done()
        if step in evaluations:
            evaluate(step)
            clock.resume()


def evaluating_callback(clock: TrainingTime, steps: list[int], evaluate):
    """A pythae TrainingCallback that ticks the clock after every optimizer step and evaluates at `steps`."""
    from pythae.trainers.training_callbacks import TrainingCallback

    class Callback(TrainingCallback):
        def __init__(self):
            self.step = 0

        def on_train_step_end(self, training_config, **kwargs):
            clock.step_done()
            self.step += 1
            if self.step in steps:
                evaluate(self.step)
                clock.resume()

    return Callback()


# ---- the VAE + mixture contest ---------------------------------------------------------------------------------------

def twostage_vae_mixture(settings: dict, data, workdir: str) -> list:
    from accelerate import Accelerator

    from stage1_autoencoders.train import parse_args as stage1_args
    from stage1_loop import Stage1Loop
    from stage2_prior.fit_mixture import latents_of
    from stage2_prior.mixture_prior import MixturePrior, sample_images

    args = stage1_args(["--model", "vae", "--seed", str(settings["seed"]), "--output_dir", workdir,
                        "--hidden_channels", *map(str, settings["hidden_channels"]), "--latent_dim", str(settings["latent_dim"])])
    total = settings["epochs"] * math.ceil(len(data.train_images) / args.train_batch_size)
    loop = Stage1Loop(args, data, Accelerator(cpu=True), total_steps=total)
    model, seed = loop.trained_model, settings["seed"]

    def evaluate(step: int) -> None:
        model.eval()
        with torch.no_grad():
            latents = latents_of(model, data.train_images, 256, "encoding the training set", seed=seed)
            mixture = MixturePrior.fit(latents, settings["mixture_components"], "full", seed=seed)
            samples = sample_images(mixture, model, settings["num_samples"], seed=seed)
        model.train()
        _record(curve, clock, step, total, {"fid": scorer.fid(samples)})

    scorer, clock, curve = Scorer(settings, data), TrainingTime(), []
    train_with_evaluations(loop, clock, total, evaluate)
    return curve


def pythae_vae_mixture(settings: dict, data, workdir: str) -> list:
    from pythae.pipelines import TrainingPipeline
    from pythae.samplers import GaussianMixtureSampler, GaussianMixtureSamplerConfig

    from pythae_models import pythae_vae
    from pythae_runs import _our_networks, trainer_config, with_pythae_knobs

    own = with_pythae_knobs(settings, own=True)
    model = pythae_vae(_our_networks(settings, data, "vae"), own["reconstruction_loss"])
    total = settings["epochs"] * math.ceil(len(data.train_images) / own["batch_size"])
    train_images = to_float(data.train_images)

    def evaluate(step: int) -> None:
        model.eval()
        sampler = GaussianMixtureSampler(model, GaussianMixtureSamplerConfig(n_components=settings["mixture_components"]))
        sampler.fit(train_images)
        torch.manual_seed(settings["seed"])
        samples = sampler.sample(settings["num_samples"], batch_size=500)
        model.train()
        _record(curve, clock, step, total, {"fid": scorer.fid(samples)})

    scorer, clock, curve = Scorer(settings, data), TrainingTime(), []
    callback = evaluating_callback(clock, evaluation_steps(total), evaluate)
    with tempfile.TemporaryDirectory(dir=workdir) as output_dir:
        TrainingPipeline(training_config=trainer_config(own, settings["epochs"], output_dir), model=model)(
            train_data=train_images, callbacks=[callback])
    return curve


WORKERS = {("twostage", "pixelcnn"): twostage_pixelcnn, ("pythae", "pixelcnn"): pythae_pixelcnn,
           ("twostage", "vae_mixture"): twostage_vae_mixture, ("pythae", "vae_mixture"): pythae_vae_mixture}


def run_worker(spec: str, workdir: str) -> None:
    library, contest = spec.split(":")
    with open(os.path.join(workdir, "settings.json")) as file:
        settings = json.load(file)
    torch.set_num_threads(settings["threads"])
    data = load_image_data(settings["dataset_name"], max_train_samples=settings["max_train_samples"])
    curve = WORKERS[library, contest](settings, data, workdir)
    with open(os.path.join(workdir, f"{library}-{contest}.json"), "w") as file:
        json.dump(curve, file)


def run_pair(contest: str, workdir: str) -> dict:
    """Both libraries' runs of a contest at the same time; their curves."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    processes = {}
    for library in LIBRARIES:
        log = open(os.path.join(workdir, f"{library}-{contest}.log"), "w")
        command = [sys.executable, os.path.abspath(__file__), "--worker", f"{library}:{contest}", "--workdir", workdir]
        processes[library] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    curves = {}
    for library, (process, log) in processes.items():
        returncode = process.wait()
        log.close()
        if returncode != 0:
            with open(log.name) as file:
                raise SystemExit(f"The {library} {contest} run failed (exit {returncode}); the end of {log.name}:\n"
                                 f"{file.read()[-3000:]}")
        with open(os.path.join(workdir, f"{library}-{contest}.json")) as file:
            curves[library] = json.load(file)
    return curves


def time_to(curve: list, key: str, target: float) -> tuple[float, bool] | None:
    """(seconds, reached by the first evaluation) at which the figure first falls to `target` (lower is better),
    interpolated between evaluations; None if it never does."""
    previous = None
    for point in curve:
        value = point[key]
        if value is not None and value <= target:
            if previous is None:
                return point["seconds"], True
            fraction = (previous[key] - target) / (previous[key] - value)
            return previous["seconds"] + fraction * (point["seconds"] - previous["seconds"]), False
        previous = point if value is not None else previous
    return None


def contest_rows(curves: dict) -> list[dict]:
    """One seed's rows: per figure the target, each library's time to it and final value."""
    rows = []
    for contest, key, label, fmt in FIGURES:
        finals = {library: curves[contest][library][-1][key] for library in LIBRARIES}
        if any(value is None for value in finals.values()):
            rows.append({"figure": label, "target": None, "finals": finals, "times": None})
            continue
        target = max(finals.values())  # the worse final value: both libraries reach it
        rows.append({"figure": label, "fmt": fmt, "target": target, "finals": finals,
                     "times": {library: time_to(curves[contest][library], key, target) for library in LIBRARIES},
                     "budget": {library: curves[contest][library][-1]["seconds"] for library in LIBRARIES}})
    return rows


def _mean_std(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.0f} ± {statistics.stdev(values):.0f}" if len(values) > 1 else f"{mean:.0f}"


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def print_table(args, per_seed: list[list[dict]], minutes: float | None) -> None:
    images = f"{args.max_train_samples:,}" if args.max_train_samples else "all 60,000"
    print()
    print(f"command: python benchmarks/time_to_quality.py {' '.join(sys.argv[1:])}".rstrip())
    total = "" if minutes is None else f"total {minutes:.1f} min for "
    print(f"device: CPU ({os.cpu_count()} cores), two runs side by side, {args.threads} torch thread(s) each; torch "
          f"{torch.__version__}; {total}seeds {' '.join(map(str, args.seeds))}")
    print(f"MNIST, {images} training images; budget: VAEs {_epochs(args.epochs)}, PixelCNNs {_epochs(args.prior_epochs)} on the "
          f"codes of one shared VQ-VAE ({_epochs(args.vqvae_epochs)}, K={args.num_embeddings}); FID of {args.num_samples:,} "
          f"samples against {args.num_samples:,} test images; evaluations at {', '.join(f'{f:g}' for f in FRACTIONS)} of the budget")
    print("twostage at its training scripts' defaults; pythae at its MNIST config (batch 100, Adam lr 1e-3 constant, "
          "MSE for the VAE), PixelCNN at its sampler's defaults (10 layers, kernel 5)")
    header = f"{'figure':<32}{'target':>10}{'final, ours':>14}{'final, pythae':>15}{'ours (s)':>14}{'pythae (s)':>14}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for index, first in enumerate(per_seed[0]):
        rows = [seed_rows[index] for seed_rows in per_seed]
        if any(row["times"] is None for row in rows):
            print(f"{first['figure']:<32}{'withheld (a final value was withheld at this N)':>60}")
            continue
        fmt = first["fmt"]
        cells = [f"{statistics.fmean(row['target'] for row in rows):{fmt}}"]
        cells += [f"{statistics.fmean(row['finals'][library] for row in rows):{fmt}}" for library in LIBRARIES]
        times, at_most = {}, {}
        for library in LIBRARIES:
            reached = [row["times"][library] for row in rows]
            if any(time_reached is None for time_reached in reached):
                times[library] = None
                cells.append("not reached")
                continue
            times[library] = [seconds for seconds, _ in reached]
            at_most[library] = any(first_point for _, first_point in reached)
            cells.append(("<=" if at_most[library] else "") + _mean_std(times[library]))
        speedup = "n/a"
        if None not in times.values() and not all(at_most.values()):
            # Ours an upper bound: the speed-up is at least this; pythae's an upper bound: at most.
            bound = ">=" if at_most["twostage"] else "<=" if at_most["pythae"] else ""
            speedup = f"{bound}{statistics.fmean(times['pythae']) / statistics.fmean(times['twostage']):.2f}x"
        widths = (10, 14, 15, 14, 14)
        print(f"{first['figure']:<32}" + "".join(f"{cell:>{width}}" for cell, width in zip(cells, widths)) + f"{speedup:>10}")
    budgets = {}  # one entry a contest: its figures share a run
    for index, (contest, *_rest) in enumerate(FIGURES):
        if per_seed[0][index]["times"] is not None:
            budgets.setdefault(contest, {library: [seed_rows[index]["budget"][library] for seed_rows in per_seed]
                                         for library in LIBRARIES})
    print("target: the worse library's final value (lower is better), mean over seeds; times: training seconds to "
          "reach it, mean ± std over seeds, evaluations excluded; <=: reached by the first evaluation; speed-up: "
          "pythae's mean time over ours (>=: a bound, where ours is one). The whole budgets, training seconds: "
          + "; ".join(f"{contest}: " + ", ".join(f"{library} {_mean_std(values)}" for library, values in times.items())
                      for contest, times in budgets.items()))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.workdir)
    if args.from_workdir:
        with open(os.path.join(args.from_workdir, f"seed-{args.seeds[0]}", "settings.json")) as file:
            recorded = json.load(file)  # the run's own settings, whatever flags this call was given
        for name, value in recorded.items():
            if name in vars(args) and name != "seeds":
                setattr(args, name, value)
        per_seed = []
        for seed in args.seeds:
            with open(os.path.join(args.from_workdir, f"seed-{seed}", "rows.json")) as file:
                per_seed.append(json.load(file)["rows"])
        return print_table(args, per_seed, minutes=None)
    if not os.path.isdir(args.dataset_name):
        raise SystemExit(f"MNIST is not at {args.dataset_name}; give a local copy in the Hub's parquet layout with "
                         f"--dataset_name (the project keeps one at ../shared/data/mnist).")
    try:
        import pythae  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"pythae is not importable ({error}); install the benchmark extra: pip install -e \".[bench]\"")
    from evaluation.train_classifier import trained_classifier_folder

    data = load_image_data(args.dataset_name, max_train_samples=args.max_train_samples)
    classifier = trained_classifier_folder(args.dataset_name)  # loads the whole dataset only to train one
    workdir = args.workdir or tempfile.mkdtemp(prefix="time_to_quality-")
    started = time.perf_counter()
    per_seed = []
    for seed in args.seeds:
        seed_dir = os.path.join(workdir, f"seed-{seed}")
        os.makedirs(seed_dir, exist_ok=True)
        settings = {name: getattr(args, name) for name in (
            "dataset_name", "max_train_samples", "epochs", "prior_epochs", "vqvae_epochs", "num_samples", "hidden_channels",
            "latent_dim", "num_embeddings", "embedding_dim", "mixture_components", "threads")}
        # What pythae_runs' helpers read: pythae's learning rate and device, and the flags that build the networks
        # (the batch size is pythae's own there, with_pythae_knobs sets it).
        settings |= {"seed": seed, "classifier": classifier, "device": "cpu", "learning_rate": 1e-3, "batch_size": 64,
                     "ema_decay": 0.0, "channels_last": True, "pseudo_inputs": 50}
        with open(os.path.join(seed_dir, "settings.json"), "w") as file:
            json.dump(settings, file)
        print(f"seed {seed}: training the shared VQ-VAE ...", flush=True)
        shared_codes(settings, data, seed_dir)
        curves = {}
        for contest in CONTESTS:
            print(f"seed {seed}: {contest}, twostage beside pythae ...", flush=True)
            curves[contest] = run_pair(contest, seed_dir)
        rows = contest_rows(curves)
        with open(os.path.join(seed_dir, "rows.json"), "w") as file:
            json.dump({"curves": curves, "rows": rows}, file)
        per_seed.append(rows)
    print_table(args, per_seed, (time.perf_counter() - started) / 60)
    print(f"models, curves (seed-S/rows.json) and logs: {workdir}")


if __name__ == "__main__":
    main()
