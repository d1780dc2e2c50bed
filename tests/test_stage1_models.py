"""Stage-1 models on real data: every model learns, every loss term has the right shape and gradients, and the
VQ-VAE's straight-through estimator carries the decoder's gradient back to the encoder."""

import math

import pytest
import torch

from stage1_autoencoders import AE, VAE, VQVAE, BetaVAE, VectorQuantizer
from stage1_autoencoders.data import load_image_data, to_float
from stage1_autoencoders.likelihoods import bits_per_dim, choose_likelihood, discretized_logistic_log_prob, reconstruction_nll
from stage1_autoencoders.networks import OutputConv2d

CIFAR10 = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"

SETTINGS = {
    "ae": (AE, {}),
    "vae": (VAE, {}),
    "beta_vae": (BetaVAE, {"beta": 2.0, "kl_warmup_steps": 20}),
    "beta_vae_capacity": (BetaVAE, {"beta": 10.0, "capacity_max": 20.0, "capacity_steps": 50}),
    "vqvae": (VQVAE, {"num_embeddings": 32}),
    "vqvae_codebook_loss": (VQVAE, {"num_embeddings": 32, "ema_decay": 0.0, "kmeans_init": False, "dead_code_threshold": 0.0}),
}


@pytest.fixture(scope="module")
def mnist_batches(mnist_path):
    data = load_image_data(mnist_path, max_train_samples=2048, max_test_samples=256)
    return to_float(data.train_images), to_float(data.test_images)


@pytest.mark.parametrize("name", ["ae", "vae", "beta_vae", "vqvae"])
def test_each_model_learns_on_real_mnist(name, mnist_batches):
    train, test = mnist_batches
    model_class, kwargs = SETTINGS[name]
    torch.manual_seed(0)
    model = model_class(image_size=28, in_channels=1, hidden_channels=(16, 32), **kwargs)
    with torch.no_grad():
        model.eval()
        start = model(test).terms["reconstruction"].item()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(40):
        batch = train[(step * 32) % len(train):][:32]
        out = model(batch, step=step)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        end = model(test).terms["reconstruction"].item()
    # A fresh decoder outputs ~0.5 everywhere (about 543 nats per MNIST image); 40 steps must cut it by 40% or more.
    assert end < 0.6 * start, f"{name}: reconstruction NLL {start:.1f} -> {end:.1f}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_loss_terms_are_finite_scalars_with_gradients(name):
    model_class, kwargs = SETTINGS[name]
    torch.manual_seed(0)
    model = model_class(image_size=8, in_channels=1, hidden_channels=(16, 32), **kwargs).train()
    x = to_float(load_image_data("digits").train_images[:16])
    out = model(x, step=10)
    assert out.reconstruction_logits.shape == x.shape
    assert out.loss.shape == ()
    for term_name, term in out.terms.items():
        assert term.shape == (), term_name
        assert torch.isfinite(term), term_name
    trainable = [p for p in model.parameters() if p.requires_grad]
    for term_name, term in out.terms.items():
        if not term.requires_grad:
            assert term_name == "codebook" and model.quantizer.ema_decay > 0, f"{term_name} carries no gradient"
            continue
        grads = torch.autograd.grad(term, trainable, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{term_name} has no gradient"


def test_kl_term_matches_closed_form():
    model = VAE(image_size=8, hidden_channels=(16, 32), latent_dim=4)
    x = to_float(load_image_data("digits").train_images[:8])
    mean, logvar = model.encode(x)
    expected = (0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)).mean()
    torch.manual_seed(0)
    assert torch.allclose(model(x).terms["kl"], expected, atol=1e-5)


def test_vqvae_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    model = VQVAE(image_size=8, hidden_channels=(16, 32), num_embeddings=16, ema_decay=0.0, kmeans_init=False).train()
    x = to_float(load_image_data("digits").train_images[:16])
    reconstruction = model(x).terms["reconstruction"]
    encoder_grads = torch.autograd.grad(reconstruction, list(model.encoder.parameters()) + list(model.pre_quantization.parameters()))
    assert all(g.abs().sum() > 0 for g in encoder_grads)
    # The codebook receives no gradient from the reconstruction (argmin is not differentiable) ...
    codebook_grad = torch.autograd.grad(model(x).terms["reconstruction"], model.quantizer.codebook, allow_unused=True)[0]
    assert codebook_grad is None or codebook_grad.abs().sum() == 0
    # ... only from the codebook loss, while the commitment loss moves the encoder alone.
    out = model(x)
    assert torch.autograd.grad(out.terms["codebook"], model.quantizer.codebook)[0].abs().sum() > 0
    commitment_to_codebook = torch.autograd.grad(out.terms["commitment"], model.quantizer.codebook, allow_unused=True)[0]
    assert commitment_to_codebook is None or commitment_to_codebook.abs().sum() == 0


def test_quantizer_picks_the_nearest_code_and_reports_usage():
    quantizer = VectorQuantizer(num_embeddings=4, embedding_dim=2)
    quantizer.codebook.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    z = torch.tensor([[0.9, 0.1], [0.1, 0.8], [0.05, -0.1], [1.1, -0.2]]).t().reshape(1, 2, 2, 2)
    quantized, _, _, indices, counts = quantizer.eval()(z)
    assert indices.flatten().tolist() == [1, 2, 0, 1]
    assert counts.tolist() == [1, 2, 1, 0]
    assert torch.allclose(quantized, quantizer.lookup(indices))


def test_ema_codebook_moves_towards_assigned_vectors_and_dead_codes_restart():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(num_embeddings=8, embedding_dim=3, ema_decay=0.5, dead_code_threshold=0.5).train()
    z = torch.randn(4, 3, 4, 4) + 3.0  # far from the initial codebook, so most codes are never picked
    before = quantizer.codebook.detach().clone()
    for _ in range(5):
        quantizer(z)
    assert not torch.equal(before, quantizer.codebook)
    # After restarts every code sits on (or was moved from) real encoder outputs, not near zero.
    assert quantizer.codebook.norm(dim=1).min() > 1.0


def test_kmeans_initialisation_spreads_codes_over_the_data():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(num_embeddings=4, embedding_dim=2, kmeans_init=True).train()
    centres = torch.tensor([[-5.0, -5.0], [5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])
    points = (centres.repeat_interleave(16, 0) + 0.1 * torch.randn(64, 2)).t().reshape(1, 2, 8, 8)
    _, _, _, indices, counts = quantizer(points)
    assert (counts > 0).all(), "k-means initialisation left a code unused"


def test_vae_samples_from_the_standard_normal_and_are_seeded():
    model = VAE(image_size=8, hidden_channels=(16, 32), latent_dim=2).eval()
    first = model.sample(5, generator=torch.Generator().manual_seed(3))
    again = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert first.shape == (5, 1, 8, 8) and torch.equal(first, again)
    assert 0.0 <= first.min() and first.max() <= 1.0


@pytest.mark.parametrize("latent_dim", [2, 8, 32])
def test_vae_latent_sizes(latent_dim):
    model = VAE(latent_dim=latent_dim)
    out = model(torch.rand(3, 1, 28, 28))
    assert out.latent.shape == (3, latent_dim)


@pytest.mark.parametrize("out_channels, kernel_size", [(1, 3), (3, 3), (2, 5)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_the_decoders_output_conv_computes_the_conv(out_channels, kernel_size, memory_format):
    """OutputConv2d sums taps without gradients (evaluation, sampling) and runs nn.Conv2d with them (training):
    both are the conv, with the same parameters under the same names."""
    torch.manual_seed(0)
    layer = OutputConv2d(6, out_channels, kernel_size, padding=kernel_size // 2)
    assert layer.sums_taps
    x = torch.randn(4, 6, 9, 7).contiguous(memory_format=memory_format)
    expected = torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=kernel_size // 2)
    with torch.no_grad():
        summed = layer(x)
    assert summed.shape == expected.shape
    torch.testing.assert_close(summed, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(layer(x), expected)  # with gradients: the conv itself
    # In the conv's memory layout (RGB images saved with safetensors must be contiguous), for any batch, even none.
    assert summed.is_contiguous(memory_format=memory_format)
    with torch.no_grad():
        assert layer(x[:0]).shape == (0, out_channels, 9, 7)
    assert not OutputConv2d(6, 4, 3, padding=1).sums_taps and not OutputConv2d(6, 1, 3, padding="same").sums_taps
    # The decoders end with it, under the key an nn.Conv2d had: runs saved before load as they were.
    decoder = VAE().decoder
    assert isinstance(decoder.layers[-1], OutputConv2d)
    assert f"layers.{len(decoder.layers) - 1}.weight" in decoder.state_dict()


def test_rgb_and_other_sizes_build():
    out = VQVAE(image_size=32, in_channels=3, hidden_channels=(32, 64, 64))(torch.rand(2, 3, 32, 32))
    assert out.reconstruction_logits.shape == (2, 3, 32, 32) and out.indices.shape == (2, 4, 4)
    with pytest.raises(ValueError, match="not divisible"):
        AE(image_size=28, hidden_channels=(16, 32, 64))


def test_the_downsampling_factor_is_set_apart_from_the_channel_list():
    # CIFAR's 32x32 -> an 8x8 grid with three levels of channels and two residual blocks each; K=512.
    model = VQVAE(image_size=32, in_channels=3, hidden_channels=(64, 128, 128), downsampling_factor=4, num_res_blocks=2,
                  num_embeddings=512)
    out = model(torch.rand(2, 3, 32, 32))
    assert out.indices.shape == (2, 8, 8) and out.reconstruction_logits.shape == (2, 3, 32, 32)
    assert model.decode_indices(out.indices).shape == (2, 3, 32, 32)
    assert VAE(image_size=64, in_channels=3, hidden_channels=(32, 64, 128), downsampling_factor=4).feature_shape == (128, 16, 16)
    with pytest.raises(ValueError, match="power of two.*--downsampling_factor"):
        VQVAE(image_size=32, hidden_channels=(32, 64), downsampling_factor=8)
    with pytest.raises(ValueError, match="power of two"):
        VQVAE(image_size=32, hidden_channels=(32, 64), downsampling_factor=3)


def test_default_layout_is_the_one_older_runs_saved():
    # Left unset, the factor is 2 per level and one residual block per level: the tensors of runs made before.
    names = {name: tuple(t.shape) for name, t in VQVAE(image_size=28, hidden_channels=(32, 64)).state_dict().items()}
    assert names["encoder.layers.0.weight"] == (32, 1, 4, 4) and names["encoder.layers.2.weight"] == (64, 32, 4, 4)
    assert names["decoder.layers.2.weight"] == (64, 32, 4, 4) and names["decoder.layers.7.weight"] == (1, 32, 3, 3)
    assert len(names) == len(VQVAE(image_size=28, hidden_channels=(32, 64), downsampling_factor=4).state_dict())


def test_discretized_logistic_matches_a_hand_computation():
    # One interior value k=128, mean at its centre, scale s = 2/255 (one bin): P = sigmoid(0.5) - sigmoid(-0.5).
    x = torch.tensor([2 * 128 / 255 - 1])
    log_p = discretized_logistic_log_prob(x, x.clone(), torch.tensor([math.log(2 / 255)]))
    expected = 1 / (1 + math.exp(-0.5)) - 1 / (1 + math.exp(0.5))  # 0.244919
    assert abs(log_p.exp().item() - expected) < 1e-5
    # The edge bins take the tails: P(0) = sigmoid((x0 + 1/255 - mean) / s).
    edge = discretized_logistic_log_prob(torch.tensor([-1.0]), torch.tensor([-0.9]), torch.tensor([math.log(0.05)]))
    assert abs(edge.exp().item() - 1 / (1 + math.exp(-(-1 + 1 / 255 + 0.9) / 0.05))) < 1e-6
    # A distribution over the 256 levels: its probabilities sum to one, for any mean and scale.
    levels = 2 * torch.arange(256.0) / 255 - 1
    for mean, scale in [(0.3, 0.02), (-0.99, 0.001), (0.0, 3.0)]:
        total = discretized_logistic_log_prob(levels, torch.full_like(levels, mean), torch.full_like(levels, math.log(scale))).exp().sum()
        assert abs(total.item() - 1) < 1e-4, (mean, scale, total)


def test_logistic_nll_in_bits_per_dim_of_a_known_image():
    # A 3x2x2 image at mean = its own values and scale one bin: every value has P = 0.244919 (the edges more), so
    # the interior values cost -log2(0.244919) = 2.0296 bits each.
    values = torch.tensor([[10, 128, 200, 77], [30, 60, 90, 120], [150, 180, 210, 240]], dtype=torch.float).view(1, 3, 2, 2)
    x = values / 255
    logits = torch.cat([2 * x - 1, torch.full_like(x, math.log(2 / 255))], dim=1)
    nll = reconstruction_nll(logits, x, "logistic", 0.1)
    assert abs(bits_per_dim(nll, 12, "logistic").item() - (-math.log2(0.2449186624))) < 1e-4
    model = VQVAE(image_size=8, hidden_channels=(16, 32), num_embeddings=16, likelihood="logistic")
    assert model.decoder.layers[-1].out_channels == 2  # a mean and a log-scale per value
    assert model.reconstruct(torch.rand(2, 1, 8, 8)).shape == (2, 1, 8, 8)
    # The Gaussian is a density on [0, 1]: in bits per 8-bit value it adds log2(256).
    assert bits_per_dim(torch.tensor(0.0), 12, "gaussian").item() == 8.0 and bits_per_dim(1.0, 12, "bernoulli") is None


def test_the_default_likelihood_comes_from_the_data(mnist_path):
    assert choose_likelihood(load_image_data(mnist_path, max_train_samples=1000, max_test_samples=1).train_images)[0] == "bernoulli"
    assert choose_likelihood(load_image_data("digits").train_images)[0] == "gaussian"  # 17 grey levels
    if CIFAR10.is_dir():
        cifar = load_image_data(str(CIFAR10), max_train_samples=200, max_test_samples=1)
        assert choose_likelihood(cifar.train_images) == ("gaussian", choose_likelihood(cifar.train_images)[1])
        assert "colour" in choose_likelihood(cifar.train_images)[1]


def test_a_logistic_vqvae_learns_in_bits_per_dim():
    torch.manual_seed(0)
    data = load_image_data("digits")
    train, test = to_float(data.train_images), to_float(data.test_images)
    model = VQVAE(image_size=8, hidden_channels=(16, 32), num_embeddings=32, embedding_dim=8, likelihood="logistic")
    with torch.no_grad():
        start = bits_per_dim(model.eval()(test).terms["reconstruction"], 64, "logistic").item()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(100):
        out = model(train[(step * 64) % len(train):][:64], step=step)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    with torch.no_grad():
        bits = bits_per_dim(model.eval()(test).terms["reconstruction"], 64, "logistic").item()
    # A fresh decoder (scale ~1 over [-1, 1], the mostly black pixels in the edge bin) costs ~5 bits per value,
    # uniform over the 256 levels 8; 100 steps reach ~3.9 (300 steps: 3.55; the values' marginal entropy is 2.98).
    assert bits < 4.5 and bits < start - 0.8, (start, bits)
