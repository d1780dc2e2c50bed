"""Vector quantisation (van den Oord et al. 2017) as one small module, with its tricks as options:

- ema_decay > 0: the codebook follows exponential moving averages of the vectors assigned to each code
  (the paper's appendix) instead of learning from a codebook loss;
- kmeans_init: the codebook starts as k-means centroids of the first training batch, so no code starts dead;
- dead_code_threshold > 0: a code whose (EMA) usage falls below the threshold is restarted on a random encoder
  output of the current batch.
Under DDP the statistics are summed over ranks and random choices are made on rank 0 and broadcast, so every
rank keeps the same codebook.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(tensor)
    return tensor


def _broadcast(tensor: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.broadcast(tensor, src=0)
    return tensor


class VectorQuantizer(nn.Module):
    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float = 0.25,
        ema_decay: float = 0.0,
        kmeans_init: bool = False,
        dead_code_threshold: float = 0.0,
        epsilon: float = 1e-5,
    ):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.commitment_cost, self.ema_decay = commitment_cost, ema_decay
        self.kmeans_init, self.dead_code_threshold, self.epsilon = kmeans_init, dead_code_threshold, epsilon
        self.codebook = nn.Parameter(torch.empty(num_embeddings, embedding_dim).uniform_(-1 / num_embeddings, 1 / num_embeddings))
        if ema_decay > 0:
            self.codebook.requires_grad_(False)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("ema_cluster_size", torch.ones(num_embeddings))
        self.register_buffer("ema_embedding_sum", self.codebook.detach().clone())

    def nearest_codes(self, flat: torch.Tensor) -> torch.Tensor:
        codebook, flat = self.codebook.float(), flat.float()
        with torch.autocast(flat.device.type, enabled=False):  # float32 distances under mixed precision
            distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
        return distances.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w) -> quantised vectors (B, D, h, w)."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor):
        """z (B, D, h, w) -> quantised z with straight-through gradients, losses, indices (B, h, w), counts (K,)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()
        if self.training and not bool(self.initialized):
            self._kmeans_initialise(flat.detach())
        indices = self.nearest_codes(flat)
        counts = torch.bincount(indices, minlength=self.num_embeddings).float()
        if self.training and self.ema_decay > 0:
            self._ema_update(flat.detach(), indices, counts)
        if self.training and self.dead_code_threshold > 0:
            self._restart_dead_codes(flat.detach(), counts)

        quantized = F.embedding(indices, self.codebook).view(b, h, w, d).permute(0, 3, 1, 2)
        # Squared distances summed over each image's latent grid (averaged over the batch), on the same per-image
        # scale as the reconstruction NLL; a per-element mean would let the reconstruction term drown them. In
        # float32, also under mixed precision.
        commitment = (z.float() - quantized.detach().float()).pow(2).flatten(1).sum(1).mean()
        if self.ema_decay == 0:
            codebook_loss = (quantized.float() - z.detach().float()).pow(2).flatten(1).sum(1).mean()
        else:
            codebook_loss = torch.zeros((), device=z.device)
        quantized = z + (quantized.to(z.dtype) - z).detach()  # straight-through: the decoder's gradient flows to the encoder
        return quantized, codebook_loss, self.commitment_cost * commitment, indices.view(b, h, w), counts

    @torch.no_grad()
    def _kmeans_initialise(self, flat: torch.Tensor, iterations: int = 10) -> None:
        # Rank 0 clusters its batch; the others receive its centroids so codebooks agree.
        generator = torch.Generator(device=flat.device).manual_seed(0)
        pick = torch.randint(len(flat), (self.num_embeddings,), generator=generator, device=flat.device)
        centroids = flat[pick].clone()
        with torch.autocast(flat.device.type, enabled=False):  # float32 distances under mixed precision
            for _ in range(iterations):
                assignment = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ centroids.t() + centroids.pow(2).sum(1)).argmin(1)
                sums = torch.zeros_like(centroids).index_add_(0, assignment, flat)
                sizes = torch.bincount(assignment, minlength=self.num_embeddings).float()
                centroids = torch.where(sizes[:, None] > 0, sums / sizes.clamp(min=1)[:, None], centroids)
        centroids = _broadcast(centroids.to(self.codebook.dtype))
        self.codebook.data.copy_(centroids)
        self.ema_embedding_sum.copy_(centroids)
        self.ema_cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        counts = _all_reduce_sum(counts.clone())
        sums = _all_reduce_sum(torch.zeros(self.num_embeddings, self.embedding_dim, device=flat.device).index_add_(0, indices, flat))
        self.ema_cluster_size.mul_(self.ema_decay).add_(counts, alpha=1 - self.ema_decay)
        self.ema_embedding_sum.mul_(self.ema_decay).add_(sums, alpha=1 - self.ema_decay)
        # Laplace smoothing keeps a code with no members from dividing by zero.
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + self.epsilon) / (total + self.num_embeddings * self.epsilon) * total
        self.codebook.data.copy_(self.ema_embedding_sum / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, counts: torch.Tensor) -> None:
        usage = self.ema_cluster_size if self.ema_decay > 0 else _all_reduce_sum(counts.clone())
        dead = _broadcast((usage < self.dead_code_threshold).to(torch.uint8)).bool()
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        generator = torch.Generator(device=flat.device).manual_seed(int(usage.sum().item() * 1000) % (2**31))
        replacements = flat[torch.randint(len(flat), (num_dead,), generator=generator, device=flat.device)]
        replacements = _broadcast(replacements.contiguous())
        self.codebook.data[dead] = replacements.to(self.codebook.dtype)
        self.ema_embedding_sum[dead] = replacements
        self.ema_cluster_size[dead] = 1.0
