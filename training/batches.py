"""Batches straight from the decoded uint8 tensors: one indexing op per batch, no per-sample Python work.

The order is a permutation seeded by (seed, epoch), so an epoch's batches are the same in a resumed run, and
Accelerate's sharding of whole batches across ranks makes N ranks of batch B see what one rank of batch N*B sees.
"""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler


class TensorBatchDataset(Dataset):
    """Tensors indexed together; DataLoader fetches a whole batch at once through __getitems__."""

    def __init__(self, *tensors: torch.Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices)
        return tuple(t[index] for t in self.tensors)


class EpochPermutation(Sampler):
    def __init__(self, size: int, seed: int, shuffle: bool = True):
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.size))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def _whole_batch(batch):
    return batch


def make_dataloader(*tensors: torch.Tensor, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False):
    """Call `loader.set_epoch(epoch)` on the prepared loader before each epoch, and on the one that
    accelerator.skip_first_batches returns: Accelerate passes the epoch down to the sampler, and a loader it
    created counts epochs from 0 unless told."""
    sampler = EpochPermutation(len(tensors[0]), seed, shuffle)
    loader = DataLoader(
        TensorBatchDataset(*tensors),
        batch_sampler=BatchSampler(sampler, batch_size, drop_last=drop_last),
        collate_fn=_whole_batch,
        # A generator of its own: creating an iterator then draws nothing from the global RNG, which a resumed
        # run restores from the checkpoint and must see consumed exactly as in the uninterrupted run.
        generator=torch.Generator().manual_seed(seed),
    )
    return loader


def rank_slice(tensor: torch.Tensor, accelerator) -> torch.Tensor:
    """This rank's contiguous share of an evaluation split: every item on exactly one rank, none padded or repeated
    (Accelerate's sharded loaders repeat items to even out the last batch, which would count them twice)."""
    size, process_index, num_processes = len(tensor), accelerator.process_index, accelerator.num_processes
    return tensor[process_index * size // num_processes:(process_index + 1) * size // num_processes]
