"""The Gradio app (app.py, gradio_app/) on briefly trained real models: every API endpoint through gradio_client,
checked against the models used directly; bad uploads; 20 clients at once; and the page in a real browser
(Debian's chromium driven by Playwright), whose screenshot is kept in test-artifacts/.

The models are trained by the project's own training scripts on the bundled digits at 16x16, a few dozen steps
each: what they draw is poor, but every number and picture the app shows can be recomputed here and compared.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from local_hub import local_hub  # noqa: F401  (the fixture)
from PIL import Image

from evaluation.fidelity import fidelity_metrics, to_uint8
from evaluation.train_classifier import save_classifier, train_classifier
from gradio_app import generation
from gradio_app import references as references_module
from gradio_app.catalog import MODELS_ENV, ModelSources, load_catalog, model_sources
from gradio_app.handlers import EVERY_CLASS
from gradio_app.images import DISPLAY_CELL_PIXELS, MAX_SIDE, MAX_UPLOAD_BYTES, grid
from gradio_app.launch import create_app
from gradio_app.references import References, ScoringUnavailable
from hub import from_pretrained
from hub.push import push_run_folder
from stage1_autoencoders import train as stage1_train
from stage1_autoencoders.data import load_image_data, to_float
from stage2_prior import fit_mixture
from stage2_prior import train as stage2_train

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
RESOLUTION = 16  # digits upscaled from 8x8, so that the VQ-VAE has a 4x4 grid of codes for the PixelCNN
ENDPOINTS = {"/sample", "/compare_priors", "/score", "/reconstruct", "/interpolate", "/decode_latent", "/traverse", "/code_map"}
NUM_CLIENTS = 20
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A VQ-VAE and a class-conditional PixelCNN over its codes, a β-VAE and a Gaussian mixture over its latents,
    all from the training scripts, and an evaluation classifier of 16x16 digits."""
    runs = tmp_path_factory.mktemp("runs")
    common = ["--dataset_name", "digits", "--resolution", str(RESOLUTION), "--hidden_channels", "16", "32",
              "--likelihood", "gaussian", "--max_train_steps", "40", "--checkpointing_steps", "1000"]
    stage1_train.main(["--model", "vqvae", "--num_embeddings", "16", "--embedding_dim", "8", *common,
                       "--output_dir", str(runs / "vqvae")])
    stage1_train.main(["--model", "beta_vae", "--latent_dim", "4", "--beta", "2", *common, "--output_dir", str(runs / "beta_vae")])
    stage2_train.main(["--vqvae", str(runs / "vqvae"), "--conditional", "--hidden_channels", "16", "--num_layers", "3",
                       "--max_train_steps", "30",
                       "--checkpointing_steps", "1000", "--codes_cache_dir", str(runs / "codes"),
                       "--output_dir", str(runs / "vqvae-pixelcnn")])
    fit_mixture.main(["--autoencoder", str(runs / "beta_vae"), "--n_components", "4", "--output_dir", str(runs / "beta_vae-gmm")])
    data = load_image_data("digits", resolution=RESOLUTION)
    classifier, metrics = train_classifier(data, num_epochs=1, min_train_steps=150, train_batch_size=64)
    save_classifier(classifier, metrics, data, {}, str(runs / "classifier"))
    return runs


@pytest.fixture(scope="module")
def served_sources(runs) -> list[str]:
    return [str(runs / name) for name in ("vqvae", "vqvae-pixelcnn", "beta_vae", "beta_vae-gmm", "classifier")]


@pytest.fixture(scope="module")
def app_url(served_sources, tmp_path_factory):
    """`python app.py --models ...` in its own process, as it runs locally and on a Space."""
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    env = {key: value for key, value in os.environ.items() if key != MODELS_ENV}
    env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "app.py", "--models", *served_sources, "--port", str(port)],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"app.py did not start serving on {url}:\n{log_path.read_text()[-5000:]}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def client(app_url) -> Client:
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def test_digits() -> torch.Tensor:
    return load_image_data("digits", resolution=RESOLUTION).test_images


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def expected(images: torch.Tensor, columns: int | None = None) -> np.ndarray:
    return np.asarray(grid(images, columns).convert("RGB"))


def cells(picture: np.ndarray, size: int = RESOLUTION) -> tuple[int, int]:
    """(rows, columns) of images in a grid drawn by the app."""
    scale = math.ceil(DISPLAY_CELL_PIXELS / size)
    step = (size + 2) * scale
    return (picture.shape[0] - 2 * scale) // step, (picture.shape[1] - 2 * scale) // step


def cell(picture: np.ndarray, row: int, column: int, size: int = RESOLUTION) -> np.ndarray:
    """One image of a grid, back at its own size (the grid scales each up by nearest neighbour)."""
    scale = math.ceil(DISPLAY_CELL_PIXELS / size)
    top, left = 2 * scale + row * (size + 2) * scale, 2 * scale + column * (size + 2) * scale
    return picture[top : top + size * scale : scale, left : left + size * scale : scale, 0]


def save_png(image: torch.Tensor, path: Path) -> str:
    Image.fromarray(image[0, 0].numpy()).save(path)
    return str(path)


def test_the_api_is_the_apps_eight_actions(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(named) == ENDPOINTS


def test_samples_are_the_models_own_for_the_seed(client, runs):
    generator = from_pretrained(runs / "vqvae-pixelcnn")
    picture = pixels(client.predict("vqvae", "PixelCNN (class-conditional)", 30, 5, 0.8, "3", api_name="/sample"))
    assert np.array_equal(picture, expected(generator.sample(30, seed=5, temperature=0.8, labels=3)))
    # Every class in turn: one column per class, sample i of class i mod 10.
    picture = pixels(client.predict("vqvae", "PixelCNN (class-conditional)", 20, 5, 1.0, EVERY_CLASS, api_name="/sample"))
    assert cells(picture) == (2, 10)
    assert np.array_equal(picture, expected(generator.sample(20, seed=5, labels=torch.arange(20) % 10), columns=10))
    # The baseline prior: N(0, I) latents decoded by the β-VAE.
    beta_vae = from_pretrained(runs / "beta_vae")
    picture = pixels(client.predict("beta_vae", "N(0,I)", 9, 1, 1.0, EVERY_CLASS, api_name="/sample"))
    with torch.no_grad():
        assert np.array_equal(picture, expected(beta_vae.decode(torch.randn(9, 4, generator=torch.Generator().manual_seed(1)))))
    assert not np.array_equal(picture, pixels(client.predict("beta_vae", "N(0,I)", 9, 2, 1.0, EVERY_CLASS, api_name="/sample")))


@pytest.mark.parametrize("num_samples", [100, 150])
def test_compare_priors_scores_both_grids_and_the_ceiling_at_the_requested_n(client, runs, test_digits, num_samples):
    baseline, baseline_is, learned, learned_is, real_is, note = client.predict("beta_vae", "Gaussian mixture", num_samples, 3,
                                                                                api_name="/compare_priors")
    vae, mixture = from_pretrained(runs / "beta_vae"), from_pretrained(runs / "beta_vae-gmm")
    with torch.no_grad():
        normal_samples = vae.decode(torch.randn(num_samples, 4, generator=torch.Generator().manual_seed(3)))
    mixture_samples = mixture.sample(num_samples, seed=3)
    assert np.array_equal(pixels(baseline), expected(normal_samples))
    assert np.array_equal(pixels(learned), expected(mixture_samples))
    classifier = str(runs / "classifier")
    for shown, samples in ((baseline_is, normal_samples), (learned_is, mixture_samples)):
        score = fidelity_metrics(to_uint8(samples), metrics=("isc",), feature_extractor_weights_path=classifier, seed=3)["is"]
        assert shown == round(score, 2)
    # The ceiling: as many real test images as samples, in the same splits with the same seed.
    ceiling = fidelity_metrics(test_digits[:num_samples], metrics=("isc",), feature_extractor_weights_path=classifier, seed=3)
    assert real_is == round(ceiling["is"], 2)
    assert f"N = {num_samples} samples each, IS over 1 splits of 100" in note
    assert f"the ceiling is the IS of {num_samples} real test images" in note and f"the classifier {classifier}" in note


def test_compare_priors_shows_the_evaluation_reports_numbers_for_the_seed(client, runs, tmp_path):
    """The app and the report load, sample and score through one path: the same N and seed give the same numbers."""
    from evaluation.evaluate import main as evaluate

    evaluate([str(runs / "beta_vae-gmm"), "--num_samples", "100", "--seed", "0", "--feature_extractor_weights_path",
              str(runs / "classifier"), "--accept_weak_classifier", "--num_importance_samples", "2", "--tsne_points", "50",
              "--output_dir", str(tmp_path / "report")])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    rows = {row["prior"]: row for row in report["rows"]}
    _, baseline_is, _, learned_is, real_is, _ = client.predict("beta_vae", "Gaussian mixture", 100, 0, api_name="/compare_priors")
    assert baseline_is == round(rows["N(0,I)"]["is"], 2) and learned_is == round(rows["Gaussian mixture"]["is"], 2)
    assert real_is == round(report["real_test_split"]["is"], 2)


def test_a_class_conditional_prior_is_compared_with_the_reports_per_class_baseline(client, runs, tmp_path):
    """Like information: the conditional PixelCNN beside per-class code frequencies, the report's numbers for both."""
    from evaluation.evaluate import main as evaluate

    evaluate([str(runs / "vqvae-pixelcnn"), "--num_samples", "100", "--seed", "0", "--feature_extractor_weights_path",
              str(runs / "classifier"), "--accept_weak_classifier", "--tsne_points", "50", "--output_dir", str(tmp_path / "report")])
    rows = {row["prior"]: row for row in json.loads((tmp_path / "report" / "report.json").read_text())["rows"]}
    _, baseline_is, _, learned_is, _, note = client.predict("vqvae", "PixelCNN (class-conditional)", 100, 0,
                                                            api_name="/compare_priors")
    assert baseline_is == round(rows["per-class code frequencies"]["is"], 2)
    assert learned_is == round(rows["PixelCNN (class-conditional)"]["is"], 2)
    assert "Both are given the classes (every class in turn): the baseline is the per-class code frequencies" in note


def test_score_gives_is_and_fid_against_the_test_split(client, runs, test_digits):
    inception, inception_std, fid, note = client.predict("vqvae", "uniform", 200, 4, 1.0, EVERY_CLASS, api_name="/score")
    vqvae = from_pretrained(runs / "vqvae")
    codes = torch.randint(16, (200, 4, 4), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        samples = vqvae.decode_indices(codes)
    scores = fidelity_metrics(to_uint8(samples), test_digits, metrics=("isc", "fid"),
                              feature_extractor_weights_path=str(runs / "classifier"), seed=4)
    assert (inception, inception_std, fid) == tuple(round(scores[key], 3) for key in ("is", "is_std", "fid"))
    assert f"FID against the {len(test_digits)} test images of digits" in note and "2 splits of 100" in note


def test_reconstruct_takes_an_upload_or_a_drawing_as_the_model_saw_its_data(client, runs, test_digits, tmp_path):
    vqvae = from_pretrained(runs / "vqvae")
    digit = test_digits[:1]
    with torch.no_grad():
        reconstruction = vqvae.reconstruct(to_float(digit))
    uploaded = pixels(client.predict("vqvae", handle_file(save_png(digit, tmp_path / "digit.png")), None,
                                     api_name="/reconstruct"))
    assert np.array_equal(uploaded, expected(torch.cat([to_float(digit), reconstruction]), columns=2))
    # Dark ink on white, four times the size, as drawn on the sketchpad: shrunk and inverted back to the digit.
    ink = Image.fromarray(255 - digit[0, 0].numpy()).resize((4 * RESOLUTION,) * 2, Image.NEAREST).convert("RGB")
    ink.save(tmp_path / "drawing.png")
    drawing = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "drawing.png"))}
    drawn = pixels(client.predict("vqvae", None, drawing, api_name="/reconstruct"))
    assert np.abs(cell(drawn, 0, 0).astype(int) - digit[0, 0].numpy()).mean() < 8  # bilinear shrinking blurs edges


def test_interpolation_runs_from_one_image_to_the_other(client, runs, test_digits, tmp_path):
    start, end = test_digits[:1], test_digits[1:2]
    picture = pixels(client.predict("beta_vae", handle_file(save_png(start, tmp_path / "a.png")), None,
                                    handle_file(save_png(end, tmp_path / "b.png")), None, 5, api_name="/interpolate"))
    assert cells(picture) == (1, 7)
    vae = from_pretrained(runs / "beta_vae")
    with torch.no_grad():
        z = vae.embed(to_float(torch.cat([start, end])))
        path = vae.decode(torch.stack([(1 - t) * z[0] + t * z[1] for t in torch.linspace(0, 1, 5)]))
    assert np.array_equal(picture, expected(torch.cat([to_float(start), path, to_float(end)]), columns=7))


def test_latent_sliders_decode_and_traverse(client, runs):
    vae = from_pretrained(runs / "beta_vae")
    values = [0.5, -1.0, 2.0, 0.25]
    with torch.no_grad():
        decoded = vae.decode(torch.tensor([values]))
    assert np.array_equal(pixels(client.predict("beta_vae", *values, api_name="/decode_latent")), expected(decoded))
    picture = pixels(client.predict("beta_vae", *values, api_name="/traverse"))
    assert cells(picture) == (4, 9)  # one row per latent, swept over 9 values
    with torch.no_grad():  # row 2 sweeps z2 from -3 to 3, the others held at the sliders' values
        z = torch.tensor([values] * 9)
        z[:, 2] = torch.linspace(-3, 3, 9)
        assert np.array_equal(np.stack([cell(picture, 2, i) for i in range(9)]),
                              to_uint8(vae.decode(z))[:, 0].numpy())


def test_code_map_shows_the_vqvaes_codes(client, runs, test_digits, tmp_path):
    figure, indices = client.predict("vqvae", handle_file(save_png(test_digits[:1], tmp_path / "d.png")), None,
                                     api_name="/code_map")
    vqvae = from_pretrained(runs / "vqvae")
    with torch.no_grad():
        assert indices["data"] == vqvae.encode_to_indices(to_float(test_digits[:1]))[0].tolist()
    assert cells(pixels(figure)) == (1, 3)  # the image, its reconstruction, its codes


def png_of_size(path: Path, width: int, height: int) -> str:
    picture = np.zeros((height, width), dtype=np.uint8)
    picture[height // 4 : height // 2, width // 4 : width // 2] = 255
    Image.fromarray(picture).save(path)
    return str(path)


def bad_upload(case: str, folder: Path) -> str | None:
    if case in ("text file named .png", "text file"):
        path = folder / ("notes.png" if case.endswith(".png") else "notes.txt")
        path.write_text("not an image")
        return str(path)
    if case == "too large":
        return png_of_size(folder / "large.png", MAX_SIDE + 1, MAX_SIDE + 1)  # a small file, a huge image
    if case == "too small":
        return png_of_size(folder / "small.png", 4, 4)
    if case == "too wide":
        return png_of_size(folder / "wide.png", 300, 100)
    if case == "blank":
        Image.new("L", (32, 32), 255).save(folder / "blank.png")
        return str(folder / "blank.png")
    if case == "claims to be huge":  # a PNG header saying 30000x30000 and no pixels: a few bytes that would decode to 900 MB
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
        (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b""))
        return str(folder / "bomb.png")
    if case == "truncated":  # the header says 64x64, the pixels are cut off
        (folder / "cut.png").write_bytes(Path(png_of_size(folder / "whole.png", 64, 64)).read_bytes()[:60])
        return str(folder / "cut.png")
    return None


@pytest.mark.parametrize("case, message", [
    ("text file named .png", "not an image PIL can read"),
    ("text file", "Invalid file type"),
    ("too large", f"at most {MAX_SIDE} pixels a side"),
    ("claims to be huge", "far too large"),
    ("too small", "at least 8 pixels a side"),
    ("too wide", "crop it to roughly a square"),
    ("blank", "The image is blank"),
    ("truncated", "damaged"),
    ("no image", "upload a file or draw a digit"),
])
def test_a_bad_upload_gets_a_message_saying_what_to_do(client, case, message, tmp_path):
    upload = bad_upload(case, tmp_path)
    with pytest.raises(AppError, match=message):
        client.predict("vqvae", None if upload is None else handle_file(upload), None, api_name="/reconstruct")


def test_a_huge_upload_is_refused_by_the_server(app_url, tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    with open(huge, "rb") as file:  # straight to the upload route: gradio_client refuses it before sending
        response = httpx.post(f"{app_url}gradio_api/upload", files=[("files", ("huge.png", file))])
    assert response.status_code == 413 and "maximum allowed size" in response.text


@pytest.mark.parametrize("call, message", [
    (("nope", "uniform", 4, 0, 1.0, EVERY_CLASS, "/sample"), r"nope is not in the list of choices: \['vqvae', 'beta_vae'\]"),
    (("vqvae", "Gaussian mixture", 4, 0, 1.0, EVERY_CLASS, "/sample"), "vqvae has no prior 'Gaussian mixture'"),
    (("vqvae", "PixelCNN (class-conditional)", 300, 0, 1.0, EVERY_CLASS, "/sample"), "greater than maximum value 256"),
    (("vqvae", "PixelCNN (class-conditional)", 4, 0, 0.0, EVERY_CLASS, "/sample"), "less than minimum value 0.1"),
    (("vqvae", "PixelCNN (class-conditional)", 5000, 0, 1.0, EVERY_CLASS, "/score"), "greater than maximum value 2000"),
    (("vqvae", 0.0, 0.0, 0.0, 0.0, "/traverse"), r"vqvae is not in the list of choices: \['beta_vae'\]"),
    (("vqvae", "Gaussian mixture", 100, 0, "/compare_priors"), "vqvae has no learned prior 'Gaussian mixture'"),
    (("beta_vae", "Gaussian mixture", 99, 0, "/compare_priors"), "less than minimum value 100"),
])
def test_out_of_range_requests_are_refused_with_a_reason(client, call, message):
    *arguments, api_name = call
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name=api_name)


def test_twenty_clients_at_once_are_all_answered_correctly(app_url, runs):
    generator = from_pretrained(runs / "vqvae-pixelcnn")
    wanted = [expected(generator.sample(40, seed=seed, labels=torch.arange(40) % 10), columns=10) for seed in range(NUM_CLIENTS)]
    clients = [Client(app_url, verbose=False) for _ in range(NUM_CLIENTS)]
    results, seconds, errors = [None] * NUM_CLIENTS, [None] * NUM_CLIENTS, []
    start = threading.Barrier(NUM_CLIENTS)

    def one_user(seed: int) -> None:
        start.wait()  # all twenty ask at the same moment
        began = time.perf_counter()
        try:
            results[seed] = pixels(clients[seed].predict("vqvae", "PixelCNN (class-conditional)", 40, seed, 1.0, EVERY_CLASS, api_name="/sample"))
        except Exception as error:  # reported below with the client's number
            errors.append(f"client {seed}: {error!r}")
        seconds[seed] = time.perf_counter() - began

    threads = [threading.Thread(target=one_user, args=(seed,)) for seed in range(NUM_CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    print(f"\n{NUM_CLIENTS} clients at once, all answered in {time.perf_counter() - began:.1f} s; seconds each waited "
          f"for its grid: " + ", ".join(f"{s:.2f}" for s in seconds))
    assert not errors, errors
    assert all(np.array_equal(result, want) for result, want in zip(results, wanted))


def test_the_first_place_naming_models_wins(tmp_path):
    runs = tmp_path / "runs"
    (runs / "vae").mkdir(parents=True)
    (runs / "vae" / "config.json").write_text("{}")
    (runs / "notes").mkdir()
    listed = tmp_path / "models.txt"
    listed.write_text("# served on the Space\nuser/mnist-vae  # the VAE\n\nuser/mnist-vae-gmm\n")
    assert model_sources(["a", "b,c"], str(listed), str(runs), {MODELS_ENV: "d"}).sources == ["a", "b", "c"]
    assert model_sources(None, str(listed), str(runs), {MODELS_ENV: "d e"}).sources == ["d", "e"]
    assert model_sources(None, str(listed), str(runs), {}).sources == ["user/mnist-vae", "user/mnist-vae-gmm"]
    assert model_sources(None, None, str(runs), {}).sources == [str(runs / "vae")]
    with pytest.raises(SystemExit, match="no such file"):
        model_sources(None, str(tmp_path / "missing.txt"), str(runs), {})


def test_without_models_the_page_says_how_to_get_them(tmp_path):
    demo = create_app(ModelSources([str(tmp_path / "not-trained-yet")], "--models"))
    texts = " ".join(str(block.value) for block in demo.blocks.values() if type(block).__name__ == "Markdown")
    assert "bash run_pipeline.sh" in texts and "TWOSTAGE_MODELS" in texts
    assert f"{tmp_path / 'not-trained-yet'}: " in texts and "no such folder" in texts  # the reason it did not load


def test_hub_ids_in_the_spaces_variable_serve_and_score_like_run_folders(local_hub, runs, test_digits):
    for name in ("vqvae", "classifier"):
        push_run_folder(runs / name, f"{local_hub.server.user}/app-{name}")
    user = local_hub.server.user
    sources = model_sources(None, environ={MODELS_ENV: f"{user}/app-vqvae, {user}/app-classifier"})
    catalog = load_catalog(sources)
    assert not catalog.problems and [listed.source for listed in catalog.classifiers] == [f"{user}/app-classifier"]
    assert catalog.classifiers[0].dataset == "digits"
    served = catalog.models[f"{user}/app-vqvae"]
    assert served.dataset == "digits"  # from the repo's training_info.json
    images = generation.sample(served, "uniform", 20, seed=0)
    references = References(catalog.classifiers)
    references.prepare(catalog.models.values())
    scores = references.score(served, images, seed=0, with_fid=True)
    assert scores == fidelity_metrics(to_uint8(images), test_digits, metrics=("isc", "fid"),
                                      feature_extractor_weights_path=str(runs / "classifier"), seed=0)


def test_the_classifier_is_trained_for_the_models_own_dataset_when_none_is_listed(served_sources, runs, monkeypatch,
                                                                                    tmp_path):
    catalog = load_catalog(ModelSources(served_sources[:2], "test"))
    asked = []
    monkeypatch.setattr(references_module, "trained_classifier_folder",
                        lambda dataset, resolution: asked.append((dataset, resolution)) or str(runs / "classifier"))
    references = References([])
    assert references.for_model(catalog.models["vqvae"]).classifier is None and not asked  # requests never prepare
    references.prepare(catalog.models.values())  # as create_app does at startup
    reference = references.for_model(catalog.models["vqvae"])
    assert asked == [("digits", RESOLUTION)]  # the digits are 8x8 natively: trained on the model's 16x16
    assert reference.classifier == str(runs / "classifier") and len(reference.test_images) == 180
    (tmp_path / "copy-without-info").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "copy-without-info" / name).write_bytes((runs / "vqvae" / name).read_bytes())
    unknown = load_catalog(ModelSources([str(tmp_path / "copy-without-info")], "test")).models["copy-without-info"]
    references.prepare([unknown])
    with pytest.raises(ScoringUnavailable, match="its run names no dataset.*evaluation.train_classifier"):
        references.score(unknown, torch.zeros(10, 1, RESOLUTION, RESOLUTION), seed=0, with_fid=False)


def test_the_space_installs_every_dependency_but_gradio():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from packaging.requirements import Requirement

    declared = {Requirement(line).name for line in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert {Requirement(line).name for line in lines if line} == declared - {"gradio"}  # sdk_version installs gradio


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install chromium (run_tests.sh does)")
def test_in_a_browser_sampling_and_comparing_priors_show_images_and_scores(app_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app_url)
        page.get_by_role("button", name="Sample", exact=True).click()
        expect(page.locator("#samples img")).to_be_visible(timeout=60_000)

        page.get_by_role("tab", name="Compare priors").click()
        page.get_by_role("button", name="Compare", exact=True).click()
        for output in ("baseline", "learned"):
            expect(page.locator(f"#{output}-samples img")).to_be_visible(timeout=120_000)
        scores = [float(page.locator(f"#{name}-is input").input_value()) for name in ("baseline", "learned", "real")]
        assert all(1.0 <= score <= 10.0 for score in scores)  # IS lies between 1 and the number of classes
        page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)

        # A file that is not an image: the message is shown in the page.
        page.get_by_role("tab", name="Explore").click()
        (tmp_path / "notes.png").write_text("not an image")
        page.locator("input[type=file]").first.set_input_files(str(tmp_path / "notes.png"))
        page.get_by_role("button", name="Reconstruct", exact=True).click()
        expect(page.get_by_text("not an image PIL can read")).to_be_visible(timeout=30_000)
        browser.close()
