"""Pushing a finished run folder, and checkpoints as training writes them, to a Hub model repo.

    python -m hub.push RUN_DIR --hub_model_id user/mnist-vqvae [--private]

The token comes from where huggingface_hub looks (HF_TOKEN, then the `hf auth login` cache); this module never
prints it or writes it anywhere. The model is checked before anything is sent: the folder must load strictly.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.hf_api import RepoFolder

from hub.auto import import_object, model_entry
from hub.files import CONFIG_NAME, WEIGHTS_NAME, looks_like_path, read_config
from hub.model_card import SAMPLES_NAME, TRAINING_INFO_NAME, without_local_paths
from hub.run_card import build_run_model_card

# What a run folder publishes: the model, its card, the picture beside the card, and the records the card is
# written from. Checkpoints, logs and per-epoch images stay local (push_checkpoint handles checkpoints).
RUN_FILES = (CONFIG_NAME, WEIGHTS_NAME, "README.md", SAMPLES_NAME, TRAINING_INFO_NAME)
CHECKPOINTS_IN_REPO = "checkpoints"


def push_run_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload twostage model",
    report: str | Path | None = None,
) -> CommitInfo:
    """Writes the run's model card into `folder` as README.md, then pushes the model files in one commit.
    `report`: an evaluation report (report.json or its folder) whose rows for this run go on the card.
    Returns the commit (`.oid` is the revision to pin, `.commit_url` its page)."""
    folder = Path(folder)
    check_run_folder(folder)
    build_run_model_card(folder, repo_id, read_report(report) if report else None).save(folder / "README.md")
    operations = [CommitOperationAdd(name, published_file(folder / name)) for name in RUN_FILES if (folder / name).is_file()]
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.create_commit(repo_id, operations, commit_message=commit_message)


def push_checkpoint(
    checkpoint_dir: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> CommitInfo:
    """Pushes a training checkpoint folder to checkpoints/<its name>/ in the repo, as the Hub's training
    integrations do with every save (transformers' hub_strategy="all_checkpoints"). To resume elsewhere:
    `hf download REPO --include "checkpoints/checkpoint-N/*" --local-dir RUN_DIR` and
    --resume_from_checkpoint RUN_DIR/checkpoints/checkpoint-N. Checkpoint folders that are gone from the local
    checkpoints folder (pruned by --checkpoints_total_limit) are deleted from the repo in the same commit.
    It blocks until the upload is done, so the next checkpoint never races this one."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir() or not any(checkpoint_dir.iterdir()):
        raise FileNotFoundError(f"{checkpoint_dir}: no checkpoint there to push (the folder is missing or empty).")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    target = f"{CHECKPOINTS_IN_REPO}/{checkpoint_dir.name}"
    operations = [
        CommitOperationAdd(f"{target}/{path.relative_to(checkpoint_dir).as_posix()}", str(path))
        for path in sorted(checkpoint_dir.rglob("*"))
        if path.is_file()
    ]
    kept_locally = {path.name for path in checkpoint_dir.parent.iterdir() if path.is_dir()}
    if any(isinstance(info, RepoFolder) for info in api.get_paths_info(repo_id, [CHECKPOINTS_IN_REPO])):
        for entry in api.list_repo_tree(repo_id, CHECKPOINTS_IN_REPO):
            if Path(entry.path).name not in kept_locally:
                operations.append(CommitOperationDelete(entry.path, is_folder=True))
    message = commit_message or f"Training checkpoint {checkpoint_dir.name}"
    return api.create_commit(repo_id, operations, commit_message=message)


def published_file(path: Path) -> str | bytes:
    """What is pushed for a run file: training_info.json without local paths (see without_local_paths), the rest as is."""
    if path.name != TRAINING_INFO_NAME:
        return str(path)
    return json.dumps(without_local_paths(json.loads(path.read_text())), indent=2).encode()


def check_run_folder(folder: Path) -> None:
    """The folder holds a model that loads strictly, and names its stage-1 model by a repo id others can reach."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such run folder. Give the --output_dir of a finished training run.")
    config = read_config(str(folder))
    entry = model_entry(config.get("model_type"), str(folder))
    import_object(entry.model_class).from_pretrained(folder)  # raises, naming the problem, if anything mismatches
    decoder_id = config.get(f"{entry.decoder}_id") if entry.decoder else None
    if decoder_id is not None and looks_like_path(decoder_id):
        raise ValueError(
            f"{folder}: this prior names its {entry.decoder} by the local folder {decoder_id!r}, which nobody loading "
            f"it from the Hub can reach. Push that {entry.decoder} first (python -m hub.push {decoder_id} "
            f"--hub_model_id USER/NAME), then train the prior with --{entry.decoder} USER/NAME."
        )


def read_report(path: str | Path) -> dict:
    path = Path(path)
    path = path / "report.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation report there. Give the report folder the evaluate command wrote.")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Push a finished twostage run folder to the Hugging Face Hub.")
    parser.add_argument("run_dir", help="The --output_dir of a finished training run (config.json, model.safetensors).")
    parser.add_argument("--hub_model_id", required=True, help="The repository to push to, e.g. user/mnist-vqvae.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--commit_message", default="Upload twostage model")
    parser.add_argument("--report", default=None,
                        help="An evaluation report folder (or its report.json): its rows for this run go on the card.")
    args = parser.parse_args(argv)
    commit = push_run_folder(args.run_dir, args.hub_model_id, private=args.private, commit_message=args.commit_message,
                             report=args.report)
    print(f"Pushed {os.path.abspath(args.run_dir)} to {args.hub_model_id}: {commit.commit_url}")


if __name__ == "__main__":
    main()
