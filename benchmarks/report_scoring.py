"""The scores of a report's rows, two ways, in one run: torch-fidelity's calculate_metrics per row (what the report
did before evaluation.fidelity.Judge: one call for IS over whole splits, one for FID/KID/precision-recall, each
building the extractor and extracting the real test split's features again) against one Judge that extracts the
test split's features once and each sample set's once, and computes KID and precision/recall with less work
(evaluation/kid.py, evaluation/precision_recall.py). Prints both times, the speed-up and the largest relative
difference between the two paths' scores (the same definitions of the same features: float rounding).

    python benchmarks/report_scoring.py                       # MNIST (../shared/data/mnist), 8 rows of 2,000
    python benchmarks/report_scoring.py --rows 17 --num_samples 10000

The sample sets are real test images made worse in different ways (noise, blur, shifts), so that every score
varies between rows as a model's would; what is timed is the scoring, not the sampling.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # runnable as a script

import torch
import torch_fidelity
from torchvision.transforms.functional import gaussian_blur

from evaluation.fidelity import CLASSIFIER, IS_SPLIT_SIZE, ImageTensorDataset, Judge, RESULT_NAMES
from evaluation.train_classifier import trained_classifier_folder
from stage1_autoencoders.data import load_image_data

MNIST = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default=MNIST, help="A dataset with a test split (default: MNIST, local copy).")
    parser.add_argument("--rows", type=int, default=8, help="Sample sets scored, as a report's rows.")
    parser.add_argument("--num_samples", type=int, default=2000, help="Samples per row, and real test images.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def sample_sets(test_images: torch.Tensor, rows: int, num_samples: int, seed: int) -> list[torch.Tensor]:
    """`rows` uint8 sets of `num_samples` test images, each degraded its own way and amount."""
    generator = torch.Generator().manual_seed(seed)
    sets = []
    for row in range(rows):
        index = torch.randint(len(test_images), (num_samples,), generator=generator)
        images = test_images[index].float()
        strength = (row + 1) / rows
        kind = row % 3
        if kind == 0:
            images = images + torch.randn(images.shape, generator=generator) * 120 * strength
        elif kind == 1:
            images = gaussian_blur(images, kernel_size=5, sigma=0.2 + 2.0 * strength)
        else:
            images = images.roll(shifts=int(1 + 4 * strength), dims=-1)
        sets.append(images.clamp(0, 255).round().to(torch.uint8))
    return sets


def library_scores(generated, real, classifier: str, seed: int) -> dict:
    """A row scored as before the Judge: torch-fidelity's calculate_metrics, once for IS, once for the rest."""
    options = dict(feature_extractor=CLASSIFIER, feature_extractor_weights_path=classifier, rng_seed=seed,
                   save_cpu_ram=True, cache=False, verbose=False, cuda=torch.cuda.is_available())
    splits = len(generated) // IS_SPLIT_SIZE
    results = torch_fidelity.calculate_metrics(input1=ImageTensorDataset(generated[: splits * IS_SPLIT_SIZE]), isc=True,
                                               isc_splits=splits, **options)
    results |= torch_fidelity.calculate_metrics(
        input1=ImageTensorDataset(generated), input2=ImageTensorDataset(real), fid=True, kid=True, prc=True,
        kid_subset_size=min(1000, len(generated), len(real)), prc_batch_size=2048, **options)
    return {ours: float(results[theirs]) for theirs, ours in RESULT_NAMES.items() if theirs in results}


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_image_data(args.dataset_name, max_train_samples=1)
    classifier = trained_classifier_folder(args.dataset_name)
    real = data.test_images[: args.num_samples]
    sets = sample_sets(data.test_images, args.rows, args.num_samples, args.seed)

    started = time.perf_counter()
    before = [library_scores(images, real, classifier, args.seed) for images in sets]
    library_seconds = time.perf_counter() - started

    started = time.perf_counter()
    judge = Judge(feature_extractor_weights_path=classifier)
    real_features = judge.features(real)
    after = [judge.scores(images, real_features, seed=args.seed) for images in sets]
    judge_seconds = time.perf_counter() - started

    difference = max(abs(row[key] - ours[key]) / max(abs(row[key]), 1e-12) for row, ours in zip(before, after) for key in row)
    print(f"command: python benchmarks/report_scoring.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{args.dataset_name}: {args.rows} rows of {args.num_samples:,} samples against {len(real):,} test images; "
          f"IS, FID, KID, precision/recall; the project's classifier; {args.threads} torch thread(s); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'path':<48}{'seconds':>10}{'per row':>10}")
    print(f"{'torch-fidelity calculate_metrics, per row':<48}{library_seconds:>10.1f}{library_seconds / args.rows:>10.2f}")
    print(f"{'Judge: real features once, each set once':<48}{judge_seconds:>10.1f}{judge_seconds / args.rows:>10.2f}")
    print(f"speed-up {library_seconds / judge_seconds:.2f}x; largest relative difference between the scores {difference:.1e}")


if __name__ == "__main__":
    main()
