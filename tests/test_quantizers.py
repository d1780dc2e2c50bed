"""The VQ-VAE's quantizers: FSQ and the rotation trick against vector-quantize-pytorch (the reference
implementation) for the same inputs, FSQ's code range and usage after a short MNIST run, low-dimensional cosine
codes, and the fixes to the classic quantizer's codebook upkeep."""

import json

import pytest
import torch
from vector_quantize_pytorch import FSQ, VectorQuantize
from vector_quantize_pytorch.vector_quantize_pytorch import rotate_to

from stage1_autoencoders import VQVAE, VectorQuantizer
from stage1_autoencoders.data import load_image_data, to_float
from stage1_autoencoders.finite_scalar_quantizer import FiniteScalarQuantizer
from stage1_autoencoders.train import main as train_main
from stage1_autoencoders.vector_quantizer import rotate_onto


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [8, 6, 5], [7, 3]])
def test_fsq_matches_vector_quantize_pytorch(levels):
    torch.manual_seed(0)
    reference = FSQ(levels)
    ours = FiniteScalarQuantizer(levels, embedding_dim=len(levels), normalize_inputs=False)
    z = 3 * torch.randn(4, len(levels), 6, 6)
    reference_codes, reference_indices = reference(z)
    codes, codebook_loss, commitment, indices, counts = ours(z)
    assert torch.equal(indices, reference_indices.long())
    assert torch.allclose(codes, reference_codes, atol=1e-6)
    assert torch.allclose(ours.lookup(indices), reference.indices_to_codes(reference_indices), atol=1e-6)
    assert codebook_loss == 0 and commitment == 0 and counts.sum() == indices.numel()


def test_fsq_codes_stay_in_range_and_round_trip():
    levels = [8, 5, 5, 5]
    quantizer = FiniteScalarQuantizer(levels, embedding_dim=4, normalize_inputs=False)
    every_index = torch.arange(1000)
    grid_points = quantizer.indices_to_codes(every_index)
    assert len(grid_points.unique(dim=0)) == 1000 and torch.equal(quantizer.codes_to_indices(grid_points), every_index)
    extremes = torch.cat([torch.full((1, 4), value) for value in (-1e6, -3.0, 0.0, 3.0, 1e6)] + [1e3 * torch.randn(5000, 4)])
    indices = quantizer.nearest_codes(extremes)
    assert indices.min() >= 0 and indices.max() < quantizer.num_embeddings == 1000
    assert {int(indices[0]), int(indices[4])} == {0, 999}  # the grid's two far corners


def test_rotation_trick_matches_vector_quantize_pytorch_in_values_and_gradients():
    torch.manual_seed(0)
    encoder_outputs, codes = torch.randn(32, 6, requires_grad=True), torch.randn(32, 6)
    upstream = torch.randn(32, 6)
    ours, reference = rotate_onto(encoder_outputs, codes), rotate_to(encoder_outputs, codes)
    assert torch.allclose(ours, codes, atol=1e-5) and torch.allclose(ours, reference, atol=1e-5)
    our_grad = torch.autograd.grad(ours, encoder_outputs, upstream)[0]
    reference_grad = torch.autograd.grad(reference, encoder_outputs, upstream)[0]
    assert torch.allclose(our_grad, reference_grad, atol=1e-5)
    assert not torch.allclose(our_grad, upstream, atol=1e-2)  # not the straight-through copy


def test_quantizer_with_rotation_trick_matches_vector_quantize_pytorch():
    torch.manual_seed(0)
    dim, size = 6, 16
    reference = VectorQuantize(dim=dim, codebook_size=size, rotation_trick=True, commitment_weight=0.0, ema_update=False).train()
    ours = VectorQuantizer(size, dim, rotation_trick=True).train()
    with torch.no_grad():
        ours.codebook.copy_(reference._codebook.embed[0])
    z = torch.randn(2, dim, 3, 3)
    ours_input = z.clone().requires_grad_(True)
    reference_input = z.permute(0, 2, 3, 1).reshape(2, 9, dim).clone().requires_grad_(True)
    quantized, _, _, indices, _ = ours(ours_input)
    reference_quantized, reference_indices, _ = reference(reference_input)
    reference_quantized = reference_quantized.view(2, 3, 3, dim).permute(0, 3, 1, 2)
    assert torch.equal(indices, reference_indices.view(2, 3, 3))
    assert torch.allclose(quantized, reference_quantized, atol=1e-5)
    upstream = torch.randn_like(z)
    our_grad = torch.autograd.grad(quantized, ours_input, upstream)[0]
    reference_grad = torch.autograd.grad(reference_quantized, reference_input, upstream)[0]
    assert torch.allclose(our_grad, reference_grad.view(2, 3, 3, dim).permute(0, 3, 1, 2), atol=1e-5)


@pytest.mark.slow
def test_fsq_uses_more_than_90_percent_of_its_codes_after_a_short_mnist_run(mnist_path, tmp_path):
    train_main(["--model", "vqvae", "--fsq_levels", "8", "8", "--dataset_name", mnist_path, "--hidden_channels", "16", "32",
                "--max_train_samples", "4096", "--max_eval_samples", "1000", "--eval_batch_size", "500",
                "--max_train_steps", "200", "--learning_rate", "3e-3", "--output_dir", str(tmp_path)])
    model = VQVAE.from_pretrained(str(tmp_path))
    assert model.num_embeddings == 64 and json.loads((tmp_path / "config.json").read_text())["num_embeddings"] == 64
    test_images = load_image_data(mnist_path, max_train_samples=1, max_test_samples=1000).test_images
    with torch.no_grad():
        indices = model.encode_to_indices(to_float(test_images))
    assert indices.min() >= 0 and indices.max() < 64
    usage = indices.unique().numel() / 64
    assert usage > 0.9, f"FSQ used {usage:.0%} of its 64 codes"
    assert json.loads((tmp_path / "training_info.json").read_text())["final_metrics"]["test/codebook_usage"] > 0.9


@pytest.mark.parametrize("options", [dict(codebook_dim=4, cosine_codes=True), dict(rotation_trick=True),
                                     dict(fsq_levels=[5, 3])])
def test_vqvae_quantizer_options_train_and_round_trip(options, tmp_path):
    torch.manual_seed(0)
    model = VQVAE(image_size=8, hidden_channels=(16, 32), num_embeddings=16, embedding_dim=8, **options)
    x = to_float(load_image_data("digits").train_images[:128])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model(x).terms["reconstruction"].item()
    for _ in range(20):
        loss = model(x).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model(x).terms["reconstruction"].item() < first - 3.0
    model.eval().save_pretrained(tmp_path)
    loaded = VQVAE.from_pretrained(tmp_path)
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    indices = loaded.encode_to_indices(x)
    assert indices.max() < loaded.num_embeddings
    if options.get("cosine_codes"):
        codes = model.quantizer.code_vectors()
        assert codes.shape == (16, 4) and torch.allclose(codes.norm(dim=1), torch.ones(16))


def test_decoder_sees_the_codebook_from_before_this_steps_ema_update():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(8, 3, ema_decay=0.5).train()
    before = quantizer.codebook.detach().clone()
    quantized, _, _, indices, _ = quantizer(torch.randn(2, 3, 4, 4) + 1.0)
    assert not torch.equal(quantizer.codebook, before)  # the EMA moved the codebook ...
    assert torch.allclose(quantized, before[indices].permute(0, 3, 1, 2), atol=1e-6)  # ... after the codes were looked up


def test_without_ema_a_code_unused_in_one_batch_is_not_dead():
    quantizer = VectorQuantizer(2, 2, dead_code_threshold=1.0).train()
    quantizer.codebook.data = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    near = lambda centre: (torch.tensor(centre) + 0.1 * torch.randn(16, 2)).t().reshape(1, 2, 4, 4)  # noqa: E731
    torch.manual_seed(0)
    quantizer(torch.cat([near([0.0, 0.0]), near([10.0, 10.0])]))  # both codes used
    quantizer(torch.cat([near([0.0, 0.0]), near([0.0, 0.0])]))  # the second unused in this batch only
    assert torch.equal(quantizer.codebook[1], torch.tensor([10.0, 10.0]))


def test_a_restarted_code_is_not_restarted_again_at_the_next_steps():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(8, 2, dead_code_threshold=1.0).train()  # no EMA: only restarts move the codebook
    quantizer(torch.randn(1, 2, 8, 8) + 10.0)  # 7 unused codes die and restart on these points
    restarted = quantizer.codebook.detach().clone()
    assert (restarted.norm(dim=1) > 5).sum() >= 7
    for _ in range(5):  # the data moves away: the restarted codes go unused for a while, and keep their places
        quantizer(torch.randn(1, 2, 8, 8) - 10.0)
    assert torch.equal(quantizer.codebook, restarted)


def test_kmeans_picks_distinct_starting_points_and_leaves_no_cluster_empty():
    points = torch.arange(32, dtype=torch.float32).view(16, 2)  # 16 distinct points, 16 codes
    quantizer = VectorQuantizer(16, 2, kmeans_init=True).train()
    _, _, _, _, counts = quantizer(points.t().reshape(1, 2, 4, 4))
    assert (counts == 1).all(), "k-means left a code without a point"
    assert torch.equal(quantizer.codebook.detach()[quantizer.codebook[:, 0].argsort()], points)


def test_fsq_input_standardisation_in_one_process_is_batchnorm_without_affine_parameters():
    """BatchStandardize (its statistics span every process under DDP; the two-process test checks that) must be
    BatchNorm1d(affine=False) in one process: outputs, gradients, running statistics, evaluation and old files."""
    from stage1_autoencoders.finite_scalar_quantizer import BatchStandardize

    torch.manual_seed(0)
    ours, reference = BatchStandardize(3), torch.nn.BatchNorm1d(3, affine=False)
    assert ours.state_dict().keys() == reference.state_dict().keys()  # files saved with BatchNorm1d load
    for step in range(4):
        x = (torch.randn(50, 3) * (step + 1) + step).requires_grad_()
        mine, theirs = ours(x), reference(x)
        assert torch.allclose(mine, theirs, atol=1e-5)
        (mine ** 3).sum().backward()
        ours_grad, x.grad = x.grad, None  # the same input through the reference
        (theirs ** 3).sum().backward()
        assert torch.allclose(ours_grad, x.grad, atol=1e-4)
    for name, value in reference.state_dict().items():
        assert torch.allclose(ours.state_dict()[name].float(), value.float(), atol=1e-5), name
    ours.eval(), reference.eval()
    x = torch.randn(20, 3)
    assert torch.allclose(ours(x), reference(x), atol=1e-5)
    ours.train()
    with pytest.raises(ValueError, match=r"this batch has 1: train with at least 2"):
        ours(torch.randn(1, 3))  # BatchNorm1d refuses it too: its variance is 0
