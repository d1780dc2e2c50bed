"""What the app reads is what its operator configured: a served model's metadata never makes the server list or read
a folder; scoring is prepared at startup; gradio's cache of uploads is deleted on a schedule.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gradio_app.references import References
from stage1_autoencoders import VQVAE

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh process with an audit hook that records every listing of a folder and every file opened, then does
# what the app does with a served model: load it, prepare its scoring at startup, and answer /score's handler.
SERVE_AND_SCORE = r"""
import json, os, sys
touched = []
def audit(event, args):
    if event in ("os.listdir", "os.scandir", "os.walk", "glob.glob", "open") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        touched.append((event, os.fsdecode(args[0])))
sys.addaudithook(audit)

import gradio as gr
from gradio_app.catalog import ModelSources, load_catalog
from gradio_app.handlers import Handlers
from gradio_app.references import References

results = {}
for scenario in json.loads(sys.argv[1]):
    touched.clear()
    catalog = load_catalog(ModelSources([scenario["model"]], "test"))
    references = References(catalog.classifiers, data_roots=scenario["data_roots"])
    references.prepare(catalog.models.values())
    try:
        Handlers(catalog, references).score(scenario["name"], "uniform", 10, 0, 1.0, "every class in turn")
        answer = "scored"
    except gr.Error as error:
        answer = str(error)
    results[scenario["name"]] = {"answer": answer, "touched": list(touched), "dataset": catalog.models[scenario["name"]].dataset}
print(json.dumps(results))
"""


def model_naming_dataset(folder: Path, dataset: str) -> Path:
    VQVAE(image_size=16, hidden_channels=[16, 32], num_embeddings=16, embedding_dim=8).save_pretrained(folder)
    (folder / "training_info.json").write_text(json.dumps({"dataset": {"source": dataset}}))
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict:
    """Two models served and scored in one fresh process: one naming /etc, one naming a folder under --data_roots."""
    root = tmp_path_factory.mktemp("served")
    allowed_dataset = root / "data" / "empty-dataset"
    allowed_dataset.mkdir(parents=True)
    scenarios = [
        {"name": "hostile", "model": str(model_naming_dataset(root / "hostile", "/etc")), "data_roots": []},
        {"name": "allowed", "model": str(model_naming_dataset(root / "allowed", str(allowed_dataset))),
         "data_roots": [str(root / "data")], "dataset_folder": str(allowed_dataset)},
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    run = subprocess.run([sys.executable, "-c", SERVE_AND_SCORE, json.dumps(scenarios)], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    results["allowed"]["dataset_folder"] = str(allowed_dataset)
    return results


def test_a_model_whose_metadata_names_etc_never_makes_the_app_list_or_read_it(served):
    result = served["hostile"]
    assert result["dataset"] == "/etc"  # the metadata did name it
    listed = [(event, path) for event, path in result["touched"] if event != "open" and (path == "/etc" or path.startswith("/etc/"))]
    # Python and its libraries open a few system files under /etc (time zone, certificates, ...); no dataset file.
    system = ("ssl", "localtime", "mime.types", "hosts", "resolv.conf", "nsswitch.conf", "gai.conf", "host.conf")
    read = [path for event, path in result["touched"] if event == "open" and path.startswith("/etc/")
            and not any(name in path for name in system)]
    assert not listed and not read, (listed, read)
    assert "outside the folders this app may read" in result["answer"] and "--data_roots" in result["answer"]
    assert "/etc" not in result["answer"]


def test_a_local_dataset_is_read_only_under_the_operators_data_roots(tmp_path):
    allowed, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    references = References([], data_roots=[str(allowed)])
    assert references.refusal("digits") is None and references.refusal("ylecun/mnist") is None  # Hub ids
    assert references.refusal(str(allowed / "mnist")) is None
    for path in ("/etc", str(elsewhere), str(allowed / ".." / "elsewhere"), str(allowed) + "-sibling", "~/secrets",
                 "imagefolder:/etc", "imagefolder", "csv", "https://example.com/data.csv"):
        assert "--data_roots" in references.refusal(path), path
    (allowed).mkdir()
    os.symlink("/etc", allowed / "link-to-etc")  # a link inside a root that leads out of it is out
    assert references.refusal(str(allowed / "link-to-etc")) is not None
    # A run's recorded data settings (a folder run, or a seed other than 0) are checked folder by folder.
    recorded = {"dataset_name": None, "train_data_dir": str(allowed / "train"), "test_data_dir": str(allowed / "test"), "seed": 3}
    assert references.refusal(json.dumps(recorded)) is None
    for hostile in ({**recorded, "test_data_dir": "/etc"}, {**recorded, "dataset_name": "csv"}, {"seed": 3}, ["/etc"]):
        refused = references.refusal(json.dumps(hostile))
        assert refused is not None and "/etc" not in refused, hostile


def test_scoring_a_model_whose_metadata_names_an_allowed_folder_reads_it(served):
    """The other side: under --data_roots, the folder is read (its images looked for, none found here)."""
    result = served["allowed"]
    assert any(path.startswith(result["dataset_folder"]) for _, path in result["touched"])
    assert "outside the folders this app may read" not in result["answer"]


@pytest.mark.slow
def test_uploads_are_deleted_on_the_schedule_given(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio-cache"), "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "app.py", "--models", str(tmp_path / "none"), "--port", str(port),
                                   "--delete_cache", "1", "2"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"app.py did not start:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        response = httpx.post(f"{url}gradio_api/upload", files=[("files", ("digit.png", b"\x89PNG not really"))])
        [stored] = response.json()
        assert os.path.isfile(stored) and stored.startswith(str(tmp_path / "gradio-cache"))
        deadline = time.monotonic() + 30
        while os.path.exists(stored) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not os.path.exists(stored), "the upload outlived --delete_cache 1 2"
    finally:
        server.terminate()
        server.wait(timeout=30)
