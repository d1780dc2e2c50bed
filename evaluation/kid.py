"""KID (Bińkowski et al. 2018) from the kernel matrices of the whole feature sets, computed once.

torch-fidelity's KID draws S random subsets of m samples from each set and computes three m x m polynomial kernel
matrices per subset: 3 S m^2 kernel values (300 million for its 100 subsets of 1,000), most of the time a report
row took at N = 2,000. Every one of those values is an entry of the kernels of the whole sets, which hold
only N1^2 + N2^2 + N1 N2 values (12 million at N = 2,000). So we compute those once, in blocks of rows, and get each
subset's kernel sums as selection-matrix products: the sum of K over the pairs of subset a is s_a^T K s_a, with s_a
the 0/1 vector of a's members. The subsets are torch-fidelity's own (its RandomState draws, in its order), so the
numbers are its numbers up to float rounding (tested; relative differences of 1e-6 to 1e-5, up to a few 1e-4
where KID is near 0, with ours the closer to a float64 computation). Where the sets are so large that the whole
kernels and the selection products cost more multiply-adds than the subsets' kernels, torch-fidelity's subset loop
runs instead (at D = 128 and 100 subsets of 1,000: from about 7,500 samples a set).
"""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

SUBSETS = 100  # torch-fidelity's defaults
SUBSET_SIZE = 1000
ROWS_PER_BLOCK = 1024  # kernel rows held at once: 1,024 x N floats


def kernel_inception_distance(features_1: torch.Tensor, features_2: torch.Tensor, subset_size: int = SUBSET_SIZE,
                              subsets: int = SUBSETS, seed: int = 0) -> dict[str, float]:
    """KID of two feature sets (N1, D) and (N2, D), torch-fidelity's polynomial kernel (x.y / D + 1)^3 and unbiased
    MMD^2 estimate, mean and std over `subsets` subsets of `subset_size`: {"kid": ..., "kid_std": ...}."""
    count_1, count_2 = len(features_1), len(features_2)
    if not 2 <= subset_size <= min(count_1, count_2):
        raise ValueError(f"KID subset_size={subset_size}: use 2 to {min(count_1, count_2)}, no more than either set holds.")
    # The subset loop computes 3 S m^2 kernel values; the whole kernels N1^2 + N2^2 + N1 N2, plus the selection
    # products, which cost S / D of a kernel value per value.
    dimensions = features_1.shape[1]
    whole = (count_1**2 + count_2**2 + count_1 * count_2) * (1 + subsets / dimensions)
    if whole >= 3 * subsets * subset_size**2:
        theirs = kid_features_to_metric(features_1, features_2, kid_subsets=subsets, kid_subset_size=subset_size,
                                        rng_seed=seed, verbose=False)
        return {"kid": theirs["kernel_inception_distance_mean"], "kid_std": theirs["kernel_inception_distance_std"]}
    rng = np.random.RandomState(seed)  # drawn exactly as torch-fidelity draws them: set 1's subset, then set 2's
    members_1, members_2 = torch.zeros((subsets, count_1)), torch.zeros((subsets, count_2))
    for subset in range(subsets):
        members_1[subset, torch.from_numpy(rng.choice(count_1, subset_size, replace=False))] = 1
        members_2[subset, torch.from_numpy(rng.choice(count_2, subset_size, replace=False))] = 1
    features_1, features_2 = features_1.float().cpu(), features_2.float().cpu()
    within_1 = _pair_sums(features_1, features_1, members_1, members_1) - members_1 @ _self_kernel(features_1)
    within_2 = _pair_sums(features_2, features_2, members_2, members_2) - members_2 @ _self_kernel(features_2)
    between = _pair_sums(features_1, features_2, members_1, members_2)
    pairs = subset_size * (subset_size - 1)
    mmd2 = (within_1 + within_2) / pairs - 2 * between / subset_size**2
    return {"kid": float(mmd2.mean()), "kid_std": float(mmd2.std(unbiased=False))}


def _kernel(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    return (rows @ columns.T / rows.shape[1] + 1) ** 3


def _self_kernel(features: torch.Tensor) -> torch.Tensor:
    """k(x, x) of every sample: the kernel's diagonal, which the unbiased estimate leaves out."""
    return (features.pow(2).sum(1) / features.shape[1] + 1) ** 3


def _pair_sums(rows: torch.Tensor, columns: torch.Tensor, row_members: torch.Tensor, column_members: torch.Tensor):
    """Per subset a, the sum of k(x, y) over x in a's rows and y in a's columns: (S,), float32 products over a
    block's rows, summed over columns and blocks in float64."""
    sums = torch.zeros(len(row_members), dtype=torch.float64)
    for start in range(0, len(rows), ROWS_PER_BLOCK):
        block = _kernel(rows[start : start + ROWS_PER_BLOCK], columns)
        sums += ((row_members[:, start : start + ROWS_PER_BLOCK] @ block) * column_members).sum(1, dtype=torch.float64)
    return sums
