"""Models saved by twostage 0.1.0 (tests/fixtures/written_by_0.1.0, written by that release's code) load in this
version and compute what they computed then: settings added since take the defaults that reproduce the old layout."""

from pathlib import Path

import pytest
import safetensors.torch
import torch

from hub import from_pretrained

FIXTURES = Path(__file__).parent / "fixtures" / "written_by_0.1.0"
EXPECTED = safetensors.torch.load_file(FIXTURES / "expected_outputs.safetensors")


@pytest.mark.parametrize("model_type", ["ae", "vae", "beta_vae", "vqvae"])
def test_an_autoencoder_saved_by_0_1_0_reconstructs_as_it_did(model_type):
    model = from_pretrained(str(FIXTURES / model_type)).eval()
    with torch.no_grad():
        reconstruction = model.reconstruct(EXPECTED["input"])
    assert torch.allclose(reconstruction, EXPECTED[f"{model_type}_reconstruction"], atol=1e-6)


def test_a_pixelcnn_saved_by_0_1_0_predicts_as_it_did():
    from stage2_prior.pixelcnn import GatedPixelCNN

    prior = GatedPixelCNN.from_pretrained(str(FIXTURES / "gated_pixelcnn")).eval()
    with torch.no_grad():
        logits = prior(EXPECTED["gated_pixelcnn_codes"])
    assert torch.allclose(logits, EXPECTED["gated_pixelcnn_logits"], atol=1e-5)


def test_a_setting_added_in_0_2_0_is_required_of_a_file_written_by_0_2_0(tmp_path):
    import json
    import shutil

    from hub.validation import ConfigError

    shutil.copytree(FIXTURES / "vqvae", tmp_path / "vqvae")
    config = json.loads((tmp_path / "vqvae" / "config.json").read_text())
    (tmp_path / "vqvae" / "config.json").write_text(json.dumps({**config, "twostage_version": "0.2.0"}))
    with pytest.raises(ConfigError, match="downsampling_factor"):
        from_pretrained(str(tmp_path / "vqvae"))
