"""Vector quantisation (van den Oord et al. 2017) as one small module, with its tricks as options:

- ema_decay > 0: the codebook follows exponential moving averages of the vectors assigned to each code
  (the paper's appendix) instead of learning from a codebook loss;
- kmeans_init: the codebook starts as k-means centroids of the first training batch, so no code starts dead;
- dead_code_threshold > 0: a code whose usage (an EMA of its counts, with or without EMA codebook updates) falls
  below the threshold is restarted on an encoder output of the current batch, with the average usage, so it has
  as long as an average code to be picked before it can count as dead again;
- rotation_trick: gradients reach the encoder through the rotation and rescaling that maps each encoder output onto
  its code (Fifty et al. 2025) instead of the straight-through copy;
- codebook_dim / cosine_codes: codes are looked up in a low-dimensional projection of the encoder output, and/or
  by cosine similarity between l2-normalised vectors (ViT-VQGAN's factorized and l2-normalised codes, Yu et al. 2022).
The decoder sees the codebook as it was when the codes were chosen; this step's EMA update and restarts apply from
the next step on (as Sonnet does). Under DDP the statistics are summed over ranks and random choices are made on
rank 0 and broadcast, so every rank keeps the same codebook.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

# Without EMA codebook updates, usage still decays this fast, so "dead" means unused for many batches, not one.
USAGE_DECAY = 0.99


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


def squared_distances(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    flat, codebook = flat.float(), codebook.float()
    with torch.autocast(flat.device.type, enabled=False):  # float32 distances, also under mixed precision
        return flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)


def rotate_onto(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The rotation trick (Fifty et al. 2025, section 4.2): returns `target`'s values (N, D), computed as the
    rotation and rescaling of `source` that lands on `target`, with the rotation and scale held constant, so the
    gradient reaching `source` is the decoder's gradient rotated back (not copied unchanged, as straight-through)."""
    source_norm, target_norm = source.norm(dim=1, keepdim=True), target.norm(dim=1, keepdim=True)
    u = (source / source_norm.clamp(min=eps)).detach()
    q = (target / target_norm.clamp(min=eps)).detach()
    w = F.normalize(u + q, dim=1, eps=eps).detach()
    # Householder reflection through w, then the reflection that sends u to q: R e = e - 2 (e.w) w + 2 (e.u) q.
    rotated = source - 2 * (source * w).sum(1, keepdim=True) * w + 2 * (source * u).sum(1, keepdim=True) * q
    return rotated * (target_norm / source_norm.clamp(min=eps)).detach()


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
        rotation_trick: bool = False,
        codebook_dim: int | None = None,
        cosine_codes: bool = False,
    ):
        super().__init__()
        if codebook_dim is not None and codebook_dim < 1:
            raise ValueError(f"codebook_dim={codebook_dim}: give a positive size, or None to look codes up at embedding_dim.")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.commitment_cost, self.ema_decay = commitment_cost, ema_decay
        self.kmeans_init, self.dead_code_threshold, self.epsilon = kmeans_init, dead_code_threshold, epsilon
        self.rotation_trick, self.cosine_codes = rotation_trick, cosine_codes
        self.codebook_dim = codebook_dim or embedding_dim
        projected = codebook_dim is not None and codebook_dim != embedding_dim
        self.project_in = nn.Linear(embedding_dim, self.codebook_dim) if projected else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, embedding_dim) if projected else nn.Identity()
        self.codebook = nn.Parameter(
            torch.empty(num_embeddings, self.codebook_dim).uniform_(-1 / num_embeddings, 1 / num_embeddings)
        )
        if ema_decay > 0:
            self.codebook.requires_grad_(False)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("ema_cluster_size", torch.ones(num_embeddings))
        self.register_buffer("ema_embedding_sum", self.codebook.detach().clone())

    def to_code_space(self, flat: torch.Tensor) -> torch.Tensor:
        """Encoder outputs (N, embedding_dim) -> the space codes are looked up in (N, codebook_dim), float32."""
        flat = self.project_in(flat).float()
        return F.normalize(flat, dim=1) if self.cosine_codes else flat

    def code_vectors(self, codebook: torch.Tensor | None = None) -> torch.Tensor:
        codebook = (self.codebook if codebook is None else codebook).float()
        return F.normalize(codebook, dim=1) if self.cosine_codes else codebook

    def nearest_codes(self, flat: torch.Tensor) -> torch.Tensor:
        """Encoder outputs (N, embedding_dim) -> indices (N,) of their nearest codes."""
        return self._nearest(self.to_code_space(flat), self.code_vectors())

    def _nearest(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        # For unit vectors the nearest code is the most similar one; one distance code path either way.
        return squared_distances(points, codes).argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w) -> quantised vectors (B, D, h, w)."""
        return self.project_out(F.embedding(indices, self.code_vectors())).permute(0, 3, 1, 2)

    def forward(self, z: torch.Tensor):
        """z (B, D, h, w) -> quantised z (gradients to the encoder by straight-through or the rotation trick),
        codebook loss, weighted commitment loss, indices (B, h, w), counts (K,)."""
        b, d, h, w = z.shape
        flat = self.to_code_space(z.permute(0, 2, 3, 1).reshape(-1, d))
        if self.training and not bool(self.initialized):
            self._kmeans_initialise(flat.detach())
        # A learned codebook is cloned so that restarts below, which write into it, leave this step's graph intact.
        codebook = self.codebook.clone() if self.codebook.requires_grad else self.codebook
        codes = self.code_vectors(codebook)
        indices = self._nearest(flat.detach(), codes.detach())
        quantized = F.embedding(indices, codes)
        counts = torch.bincount(indices, minlength=self.num_embeddings).float()
        if self.training:
            self._update_usage_and_codebook(flat.detach(), indices, counts)

        # Squared distances summed over each image's latent grid (averaged over the batch), on the same per-image
        # scale as the reconstruction NLL; a per-element mean would let the reconstruction term drown them.
        commitment = (flat - quantized.detach()).pow(2).reshape(b, -1).sum(1).mean()
        if self.ema_decay == 0:
            codebook_loss = (quantized - flat.detach()).pow(2).reshape(b, -1).sum(1).mean()
        else:
            codebook_loss = torch.zeros((), device=z.device)
        if self.rotation_trick:
            quantized = rotate_onto(flat, quantized.detach())
        else:
            quantized = flat + (quantized - flat).detach()  # straight-through: the decoder's gradient flows to the encoder
        quantized = self.project_out(quantized.to(z.dtype)).view(b, h, w, d).permute(0, 3, 1, 2)
        return quantized, codebook_loss, self.commitment_cost * commitment, indices.view(b, h, w), counts

    @torch.no_grad()
    def _kmeans_initialise(self, flat: torch.Tensor, iterations: int = 10) -> None:
        # Rank 0 clusters its batch; the others receive its centroids so codebooks agree.
        generator = torch.Generator(device=flat.device).manual_seed(0)
        order = torch.randperm(len(flat), generator=generator, device=flat.device)
        centroids = flat[order[torch.arange(self.num_embeddings, device=flat.device) % len(flat)]].clone()
        for _ in range(iterations):
            distances = squared_distances(flat, centroids)
            assignment = distances.argmin(1)
            sums = torch.zeros_like(centroids).index_add_(0, assignment, flat)
            sizes = torch.bincount(assignment, minlength=self.num_embeddings).float()
            centroids = sums / sizes.clamp(min=1)[:, None]
            empty = sizes == 0
            if empty.any():  # an empty cluster restarts on the points worst served by the current centroids
                worst = distances.gather(1, assignment[:, None])[:, 0].argsort(descending=True)
                centroids[empty] = flat[worst[torch.arange(int(empty.sum()), device=flat.device) % len(flat)]]
        centroids = _broadcast(centroids.to(self.codebook.dtype))
        self.codebook.data.copy_(centroids)
        self.ema_embedding_sum.copy_(centroids)
        self.ema_cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update_usage_and_codebook(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        counts = _all_reduce_sum(counts.clone())
        decay = self.ema_decay if self.ema_decay > 0 else USAGE_DECAY
        self.ema_cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        if self.ema_decay > 0:
            sums = _all_reduce_sum(torch.zeros_like(self.ema_embedding_sum).index_add_(0, indices, flat))
            self.ema_embedding_sum.mul_(decay).add_(sums, alpha=1 - decay)
            # Laplace smoothing keeps a code with no members from dividing by zero.
            total = self.ema_cluster_size.sum()
            smoothed = (self.ema_cluster_size + self.epsilon) / (total + self.num_embeddings * self.epsilon) * total
            self.codebook.data.copy_(self.ema_embedding_sum / smoothed[:, None])
        if self.dead_code_threshold > 0:
            self._restart_dead_codes(flat)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor) -> None:
        dead = _broadcast((self.ema_cluster_size < self.dead_code_threshold).to(torch.uint8)).bool()
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        usage = self.ema_cluster_size
        generator = torch.Generator(device=flat.device).manual_seed(int(usage.sum().item() * 1000) % (2**31))
        # Distinct encoder outputs where the batch has enough of them.
        pick = torch.randperm(len(flat), generator=generator, device=flat.device)
        replacements = _broadcast(flat[pick[torch.arange(num_dead, device=flat.device) % len(flat)]].contiguous())
        restarted_usage = max(float(usage.mean()), self.dead_code_threshold)
        self.codebook.data[dead] = replacements.to(self.codebook.dtype)
        self.ema_cluster_size[dead] = restarted_usage
        self.ema_embedding_sum[dead] = replacements * restarted_usage
