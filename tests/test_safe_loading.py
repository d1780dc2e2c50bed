"""A model's files are data written by whoever pushed it: hostile or broken ones are refused, quickly and cheaply.

Each case writes a model folder whose config.json or model.safetensors a hostile uploader (or a bad edit) could
produce, and loads it with hub.from_pretrained in a fresh process, which reports per case: the error, the seconds the
load took (printed, not asserted: speed belongs to benchmarks), the bytes it read, and how far the load raised the
process's peak resident memory, so a case that reads or allocates is seen even though the refusal arrives in the end.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from hub.files import weights_fingerprint
from stage1_autoencoders import AE, VAE, VQVAE
from stage2_prior.mixture_prior import MixturePrior
from stage2_prior.pixelcnn import GatedPixelCNN

REPO = Path(__file__).resolve().parents[1]
# What refusing may cost: the files are refused from their sizes, headers and settings, never read whole.
MAX_READ_MB = 1.0
MAX_EXTRA_MB = 200
SMALL = dict(image_size=8, hidden_channels=[16, 32])

LOADER = r"""
import json, sys, time
from hub import from_pretrained
import stage1_autoencoders, stage2_prior.pixelcnn, stage2_prior.mixture_prior, evaluation.classifier  # imports apart

import torch

def status_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024  # kB

def bytes_read():  # through read() calls, page cache included (memory-mapped reads show in the memory instead)
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))

def measured(load):  # outcome, seconds, MB read, and MB the peak resident memory rose above what was resident before
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current resident size
    before, read_before, start = status_mb("VmRSS:"), bytes_read(), time.perf_counter()
    try:
        load()
        outcome = "loaded"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    return {"outcome": outcome, "seconds": time.perf_counter() - start, "read_mb": (bytes_read() - read_before) / 2**20,
            "extra_mb": status_mb("VmHWM:") - before}

# The meters themselves: 300 MB of tensor must show as about 300 MB taken; reading a file whole, as its size read.
results = {"meter check": measured(lambda: torch.ones(75 * 2**20).sum())}
results["read meter check"] = measured(lambda: open(sys.argv[1], "rb").read())
for folder in sys.argv[2:]:
    results[folder] = measured(lambda: from_pretrained(folder))
print(json.dumps(results))
"""


def edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is DELETE:
            del config[key]
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


DELETE = object()


def saved(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every hostile case, loaded in one fresh process; case name -> {outcome, seconds, extra_mb}."""
    root = tmp_path_factory.mktemp("hostile")
    cases: dict[str, Path] = {}

    def case(name: str, model, **changes) -> Path:
        cases[name] = edit_config(saved(model, root / name), **changes)
        return cases[name]

    case("valid", AE(**SMALL, latent_dim=4))
    case("huge_hidden_channels", AE(**SMALL, latent_dim=4), hidden_channels=[100000, 100000])
    case("huge_codebook", VQVAE(**SMALL, num_embeddings=16, embedding_dim=8), num_embeddings=10**9)
    case("wider_than_its_weights", AE(**SMALL, latent_dim=4), hidden_channels=[1024, 1024])  # 370 MB if built
    case("over_the_size_cap", AE(**SMALL, latent_dim=4), hidden_channels=[2048, 2048])  # 1.5 GB if built
    case("many_layers", GatedPixelCNN(num_embeddings=16, grid_height=2, grid_width=2, hidden_channels=8, num_layers=2),
         num_layers=10**6)
    case("string_latent_dim", AE(**SMALL, latent_dim=4), latent_dim="8")
    case("string_hidden_channels", AE(**SMALL, latent_dim=4), hidden_channels="32,64")
    case("list_model_type", AE(**SMALL, latent_dim=4), model_type=["vae"])
    case("nan_std", VAE(**SMALL, latent_dim=4), observation_std=float("nan"))
    case("lost_likelihood", VAE(**SMALL, latent_dim=4, likelihood="gaussian"), likelihood=DELETE)

    header = root / "huge_header"
    saved(AE(**SMALL, latent_dim=4), header)
    weights = (header / "model.safetensors").read_bytes()
    (header / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + weights[8:])
    cases["huge_header"] = header

    truncated = root / "truncated_weights"
    saved(AE(**SMALL, latent_dim=4), truncated)
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # the header intact, half the data
    cases["truncated_weights"] = truncated

    huge_config = root / "huge_config"
    saved(AE(**SMALL, latent_dim=4), huge_config)
    (huge_config / "config.json").write_text(json.dumps({"model_type": "ae", "padding": "x" * 50 * 2**20}))
    cases["huge_config"] = huge_config

    self_reference = root / "self_reference"
    saved(GatedPixelCNN(num_embeddings=16, grid_height=2, grid_width=2, hidden_channels=8, num_layers=2,
                        vqvae_id=str(self_reference)), self_reference)
    cases["self_reference"] = self_reference

    prior_a, prior_b = root / "prior_a", root / "prior_b"  # A names B, B names A
    for this, other in ((prior_a, prior_b), (prior_b, prior_a)):
        saved(GatedPixelCNN(num_embeddings=16, grid_height=2, grid_width=2, hidden_channels=8, num_layers=2,
                            vqvae_id=str(other)), this)
    cases["two_priors_naming_each_other"] = prior_a

    # A mixture prior fitted to one AE, whose folder now holds another AE of the same latent size.
    autoencoder = saved(AE(**SMALL, latent_dim=4), root / "autoencoder")
    mixture = root / "mixture_with_swapped_autoencoder"
    saved(MixturePrior(latent_dim=4, n_components=2, autoencoder_id=str(autoencoder),
                       autoencoder_revision=weights_fingerprint(str(autoencoder / "model.safetensors"))), mixture)
    saved(AE(**SMALL, latent_dim=4), root / "autoencoder")  # new random weights, same shapes
    cases["mixture_with_swapped_autoencoder"] = mixture

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", LOADER, str(huge_config / "config.json"), *map(str, cases.values())], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    by_folder = json.loads(run.stdout.strip().splitlines()[-1])
    outcomes = {name: by_folder[str(folder)] for name, folder in cases.items()}
    outcomes.update({check: by_folder[check] for check in ("meter check", "read meter check")})
    for name, result in outcomes.items():  # shown with pytest -s
        print(f"{name:34s} {result['seconds'] * 1000:8.1f} ms {result['read_mb']:7.2f} MB read {result['extra_mb']:7.1f} MB "
              f"taken  {result['outcome'][:80]}")
    return outcomes


@pytest.mark.parametrize("name, error", [
    ("huge_hidden_channels", r"hidden_channels=\[100000, 100000\] is out of range: AE takes 1 to 4096"),
    ("huge_codebook", r"num_embeddings=1000000000 is out of range: VQVAE takes 2 to 65536"),
    ("wider_than_its_weights", r"model.safetensors does not match the AE that config.json describes \(shape mismatches"),
    ("over_the_size_cap", r"describes a AE of [\d,]+ numbers, more than the 134,217,728"),
    ("many_layers", r"num_layers=1000000 is out of range: GatedPixelCNN takes 1 to 128"),
    ("string_latent_dim", r'latent_dim="8" is not an integer'),
    ("string_hidden_channels", r'hidden_channels="32,64" is not a list of 1 to 16 values, each an integer'),
    ("list_model_type", r"model_type is a list, not a string"),
    ("nan_std", r"observation_std=NaN is not a finite number"),
    ("lost_likelihood", r"config.json lacks \['likelihood'\].*Restore them"),
    ("huge_header", r"header claims 1,099,511,627,776 bytes"),
    ("truncated_weights", r"model.safetensors is not a readable safetensors file"),
    ("huge_config", r"config.json is 52,428,\d+ bytes, more than the 1,048,576"),
    ("self_reference", r"its reference chain loops"),
    ("two_priors_naming_each_other", r"vqvae_id .*prior_b' is a 'gated_pixelcnn' model; its samples are decoded by"),
    ("mixture_with_swapped_autoencoder", r"holds other weights than the ones it was trained on"),
])
def test_hostile_files_are_refused_without_reading_them_whole_or_allocating(outcomes, name, error):
    result = outcomes[name]
    assert re.search(error, result["outcome"]), result["outcome"]
    assert result["read_mb"] < MAX_READ_MB, result  # what the time it takes would show, but not a timed assertion
    assert result["extra_mb"] < MAX_EXTRA_MB, result


def test_the_valid_model_of_the_same_process_loads_and_the_meter_sees_memory(outcomes):
    assert outcomes["valid"]["outcome"] == "loaded"
    assert 250 < outcomes["meter check"]["extra_mb"] < 400, outcomes["meter check"]  # 300 MB allocated, seen
    assert 50 <= outcomes["read meter check"]["read_mb"] < 51, outcomes["read meter check"]  # a 50 MB file read, seen


BASE = ("hub/files.py", "hub/validation.py", "hub/mixin.py", "hub/model_card.py", "hub/generator.py")


@pytest.mark.parametrize("path", BASE)
def test_the_base_every_model_inherits_knows_no_model(path):
    """Dependencies point one way: the registry (hub/auto.py), push and every model sit on the base, never under it."""
    import ast

    tree = ast.parse((REPO / path).read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    above = [name for name in imported if name.startswith(("hub.auto", "hub.push", "evaluation", "stage1_autoencoders",
                                                           "stage2_prior", "gradio_app", "training"))]
    assert not above, f"{path} imports {above}"
