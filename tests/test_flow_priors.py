"""The learned priors over continuous latents beside the mixture: the normalizing flows (MAF, neural spline flow)
on zuko, the two-stage VAE's second VAE, and the VampPrior VAE. Exact densities are checked against zuko and by
integration; every prior round-trips through save/load with identical samples for a seed; the fitting script
trains for real on digits and beats N(0, I) on held-out latents."""

import json
import math
import shutil

import pytest
import torch
import zuko

from evaluation.models import baseline_samples, load_models
from gradio_app.catalog import ModelSources, load_catalog
from hub import TwoStageGenerator, from_pretrained
from hub.auto import model_class
from stage1_autoencoders import VampPriorVAE
from stage1_autoencoders.data import load_image_data, to_float
from stage1_autoencoders.train import main as train_stage1
from stage2_prior.fit_latent_prior import main as fit_latent_prior
from stage2_prior.flow_prior import FlowPrior
from stage2_prior.two_stage_vae import TwoStageVAEPrior

ZUKO_FLOWS = {"maf": zuko.flows.MAF, "nsf": zuko.flows.NSF}


def randomised(prior, seed: int = 0):
    """Random weights everywhere (zuko starts its flows near the identity, which would make every check easy)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in prior.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
        prior.shift.copy_(torch.randn(prior.latent_dim, generator=generator))
        prior.scale.copy_(torch.rand(prior.latent_dim, generator=generator) + 0.5)
    return prior.eval()


@pytest.mark.parametrize("flow", ["maf", "nsf"])
def test_flow_log_density_matches_zuko(flow):
    prior = randomised(FlowPrior(latent_dim=5, flow=flow, transforms=2, hidden_features=(16, 16)))
    reference = ZUKO_FLOWS[flow](5, transforms=2, hidden_features=(16, 16))
    reference.load_state_dict(prior.flow.state_dict())
    z = 2 * torch.randn(64, 5)
    # log p(z) = log q((z - shift) / scale) - sum(log scale): the flow's density of the standardised latent.
    expected = reference().log_prob((z - prior.shift) / prior.scale) - prior.scale.log().sum()
    assert torch.allclose(prior.log_prob(z), expected, atol=1e-5)
    assert torch.allclose(prior(z), -expected, atol=1e-5)  # what fitting minimises


@pytest.mark.parametrize("flow", ["maf", "nsf"])
def test_flow_density_integrates_to_one_and_its_samples_follow_it(flow):
    prior = randomised(FlowPrior(latent_dim=2, flow=flow, transforms=2, hidden_features=(16,)), seed=1)
    step = 0.04
    axis = torch.arange(-12.0, 12.0, step) + step / 2
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mass = torch.cat([prior.log_prob(batch).exp() for batch in grid.split(50_000)]).sum().item() * step**2
    assert abs(mass - 1.0) < 0.02, mass
    # Samples and density agree: the samples' mean log-density is the density's negative entropy, which the grid gives.
    with torch.no_grad():
        samples = prior.sample(20_000, generator=torch.Generator().manual_seed(0))
        density = torch.cat([prior.log_prob(batch).exp() for batch in grid.split(50_000)])
        negative_entropy = (density * density.clamp(min=1e-30).log()).sum().item() * step**2
        assert abs(prior.log_prob(samples).mean().item() - negative_entropy) < 0.05


def test_vampprior_log_density_is_the_mixture_of_pseudo_posteriors():
    torch.manual_seed(0)
    model = VampPriorVAE(image_size=8, hidden_channels=(16, 32), latent_dim=3, num_pseudo_inputs=4).eval()
    z = torch.randn(10, 3)
    means, logvars = model.pseudo_posteriors()
    components = torch.distributions.Normal(means, (0.5 * logvars).exp())  # (K, D)
    expected = torch.logsumexp(components.log_prob(z[:, None, :]).sum(-1), dim=1) - math.log(4)
    assert torch.allclose(model.prior_log_prob(z), expected, atol=1e-5)
    # Its samples are drawn from that mixture: their mean log-density is far above N(0, I)'s on the same points.
    samples = model.sample_latents(4000, generator=torch.Generator().manual_seed(0))
    assert model.prior_log_prob(samples).mean() > torch.distributions.Normal(0, 1).log_prob(samples).sum(-1).mean()


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae")
    train_stage1(["--model", "vae", "--dataset_name", "digits", "--hidden_channels", "16", "32", "--latent_dim", "4",
                  "--max_train_steps", "150", "--train_batch_size", "64", "--learning_rate", "3e-3", "--output_dir", str(folder)])
    return folder


@pytest.fixture(scope="module")
def fitted_priors(trained_vae, tmp_path_factory):
    """prior name -> the run folder of that prior, fitted by the script to the VAE's aggregate posterior."""
    folders = {}
    for prior in ("maf", "nsf", "two_stage_vae"):
        folders[prior] = tmp_path_factory.mktemp(prior)
        fit_latent_prior(["--autoencoder", str(trained_vae), "--prior", prior, "--hidden_features", "32", "32",
                          "--max_train_steps", "150", "--checkpointing_steps", "100", "--output_dir", str(folders[prior])])
    return folders


@pytest.mark.parametrize("prior", ["maf", "nsf", "two_stage_vae"])
def test_fitting_script_trains_a_prior_that_loads_as_a_generator(prior, fitted_priors):
    tmp_path = fitted_priors[prior]
    info = json.loads((tmp_path / "training_info.json").read_text())
    metrics = info["final_metrics"]
    assert info["steps"] == 150 and info["prior"] == prior and (tmp_path / "checkpoints" / "checkpoint-100").is_dir()
    if prior != "two_stage_vae":  # an exact density: better than N(0, I) on the held-out latents (a VAE's KL term
        # already pulls them toward N(0, I), so on this small VAE the gain is a few hundredths of a nat)
        assert metrics["test/latent_log_likelihood"] > metrics["test/latent_log_likelihood_standard_normal"]
    generator = from_pretrained(str(tmp_path))
    assert isinstance(generator, TwoStageGenerator) and generator.decoder.model_type == "vae"
    first, again = generator.sample(6, seed=3), generator.sample(6, seed=3)
    assert first.shape == (6, 1, 8, 8) and torch.equal(first, again)
    assert not torch.equal(first, generator.sample(6, seed=4))


@pytest.mark.parametrize("average", [[], ["--use_ema"]], ids=["weights", "weight_average"])
def test_fitting_resumes_to_the_weights_of_an_uninterrupted_run(average, trained_vae, tmp_path):
    common = ["--autoencoder", str(trained_vae), "--prior", "maf", "--hidden_features", "16", "--max_train_steps", "40",
              "--checkpointing_steps", "20", "--train_batch_size", "128", *average]
    fit_latent_prior([*common, "--output_dir", str(tmp_path / "whole")])
    # What a run interrupted after step 20 leaves behind: its checkpoint, and nothing else.
    shutil.copytree(tmp_path / "whole" / "checkpoints" / "checkpoint-20", tmp_path / "split" / "checkpoints" / "checkpoint-20")
    fit_latent_prior([*common, "--output_dir", str(tmp_path / "split"), "--resume_from_checkpoint", "latest"])
    whole, split = FlowPrior.from_pretrained(tmp_path / "whole"), FlowPrior.from_pretrained(tmp_path / "split")
    for (name, a), b in zip(whole.state_dict().items(), split.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("kind", ["maf", "nsf", "two_stage_vae", "vamp_vae"])
def test_every_prior_round_trips_through_save_and_load_with_identical_samples(kind, tmp_path):
    torch.manual_seed(0)
    if kind == "vamp_vae":
        model = VampPriorVAE(image_size=8, hidden_channels=(16, 32), latent_dim=4, num_pseudo_inputs=5).eval()
    elif kind == "two_stage_vae":
        model = randomised(TwoStageVAEPrior(latent_dim=4, hidden_features=(16,)))
    else:
        model = randomised(FlowPrior(latent_dim=4, flow=kind, transforms=2, hidden_features=(16,)))
    model.save_pretrained(tmp_path)
    loaded = model_class(model.model_type).from_pretrained(str(tmp_path))  # the class hub.from_pretrained picks
    assert type(loaded) is type(model)
    expected = model.sample(8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(loaded.sample(8, generator=torch.Generator().manual_seed(5)), expected)
    if hasattr(model, "log_prob"):
        z = torch.randn(8, 4)
        assert torch.equal(loaded.log_prob(z), model.log_prob(z))


@pytest.mark.parametrize("config, message", [
    (dict(flow="realnvp"), "flow='realnvp'"),
    (dict(transforms=10_000), "transforms=10000"),
    (dict(hidden_features=[10**9]), "hidden_features=1000000000"),
    (dict(latent_dim=-1), "latent_dim=-1"),
])
def test_a_flow_config_is_checked_before_anything_is_built(config, message):
    with pytest.raises(ValueError, match=message):
        FlowPrior(**config)


def test_vampprior_vae_trains_with_its_own_prior_and_beats_n01_on_its_latents():
    torch.manual_seed(0)
    data = load_image_data("digits")
    model = VampPriorVAE(image_size=8, hidden_channels=(16, 32), latent_dim=4, num_pseudo_inputs=20)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images = to_float(data.train_images)
    first = model(images[:256]).loss.item()
    for step in range(60):
        batch = images[torch.randint(len(images), (64,), generator=torch.Generator().manual_seed(step))]
        loss = model(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert model(images[:256]).loss.item() < first - 5.0
        latents = model.sample_posterior(to_float(data.test_images), torch.Generator().manual_seed(0))
        assert model.prior_log_prob(latents).mean() > torch.distributions.Normal(0, 1).log_prob(latents).sum(-1).mean()


def test_the_report_and_the_app_list_each_prior_by_name(trained_vae, fitted_priors, tmp_path):
    vamp = tmp_path / "vamp"
    train_stage1(["--model", "vamp_vae", "--dataset_name", "digits", "--hidden_channels", "16", "32", "--latent_dim", "4",
                  "--num_pseudo_inputs", "10", "--max_train_steps", "10", "--output_dir", str(vamp)])
    sources = [str(trained_vae), *(str(folder) for folder in fitted_priors.values()), str(vamp)]
    groups = {group.source: group for group in load_models(sources).groups.values()}
    assert set(groups[str(trained_vae)].learned_priors) == {"MAF", "spline flow", "two-stage VAE"}
    assert baseline_samples(groups[str(vamp)].model, 4, seed=0, batch_size=4)[0] == "VampPrior"
    catalog = load_catalog(ModelSources(sources, "test"))
    assert not catalog.problems
    served = {model.source: model for model in catalog.models.values()}
    assert served[str(trained_vae)].priors == ["N(0,I)", "MAF", "spline flow", "two-stage VAE"]
    assert served[str(vamp)].priors == ["VampPrior"]
