"""Starting the app: which models to serve (see catalog.py), where to listen, and the queue that bounds how much
work runs at once, so that many users at once wait their turn instead of crashing the server."""

from __future__ import annotations

import argparse

import gradio as gr
import torch

from gradio_app.catalog import DEFAULT_MODELS_FILE, DEFAULT_RUNS_DIR, MODELS_ENV, ModelSources, load_catalog, model_sources
from gradio_app.handlers import Handlers
from gradio_app.images import MAX_UPLOAD_BYTES
from gradio_app.references import References
from gradio_app.ui import build_demo

CONCURRENCY = 2  # requests computed at once: sampling and scoring keep a CPU core busy each
MAX_QUEUE = 64  # requests waiting at most; one more is told the queue is full, and nothing already queued is lost
# Uploads and outputs gradio keeps in its cache: every FREQUENCY seconds, those older than AGE seconds are deleted.
DELETE_CACHE = (600, 3600)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The twostage Gradio app: sample the models, compare their priors, "
                                                 "score them by IS and FID, explore their latents.")
    parser.add_argument("--models", nargs="+", default=None, metavar="RUN_OR_HUB_ID",
                        help=f"Run folders or Hub ids of models and priors to serve. Default: ${MODELS_ENV}, then "
                             f"--models_file, then every run folder in --runs_dir.")
    parser.add_argument("--models_file", default=None,
                        help=f"A file naming one run folder or Hub id a line, # comments (default {DEFAULT_MODELS_FILE} "
                             f"if it exists).")
    parser.add_argument("--runs_dir", default=DEFAULT_RUNS_DIR, help="Where run_pipeline.sh writes its run folders.")
    parser.add_argument("--server_name", default=None, help="Interface to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1).")
    parser.add_argument("--port", type=int, default=None, help="Port (default: $GRADIO_SERVER_PORT or 7860).")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="Requests computed at once.")
    parser.add_argument("--max_queue", type=int, default=MAX_QUEUE, help="Requests waiting at most.")
    parser.add_argument("--data_roots", nargs="*", default=[], metavar="FOLDER",
                        help="Local folders whose datasets the app may read for FID and classifiers, when a served "
                             "model's training_info.json names one. Hub ids and 'digits' need none; any other local "
                             "folder a model names is refused.")
    parser.add_argument("--delete_cache", nargs=2, type=int, default=DELETE_CACHE, metavar=("FREQUENCY", "AGE"),
                        help="Every FREQUENCY seconds, delete uploads and outputs older than AGE seconds "
                             f"(default {DELETE_CACHE[0]} {DELETE_CACHE[1]}).")
    return parser.parse_args(argv)


def create_app(sources: ModelSources, concurrency: int = CONCURRENCY, max_queue: int = MAX_QUEUE,
               data_roots: list[str] | tuple[str, ...] = (), delete_cache: tuple[int, int] = DELETE_CACHE) -> gr.Blocks:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    catalog = load_catalog(sources, device)
    for problem in catalog.problems:
        print(f"Could not load {problem}")
    references = References(catalog.classifiers, data_roots)
    references.prepare(catalog.models.values())  # test splits and classifiers now, never inside a request
    demo = build_demo(catalog, Handlers(catalog, references))
    demo.delete_cache = tuple(delete_cache)  # read when the server starts (gradio's Blocks(delete_cache=...))
    return demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)


def main(argv=None) -> None:
    args = parse_args(argv)
    # Requests computed at once share the cores: more threads than cores in all would slow every one of them down.
    torch.set_num_threads(max(1, torch.get_num_threads() // args.concurrency))
    for value, flag in ((args.delete_cache[0], "--delete_cache FREQUENCY"), (args.delete_cache[1], "--delete_cache AGE")):
        if value < 1:
            raise SystemExit(f"{flag} {value}: give a number of seconds, at least 1.")
    demo = create_app(model_sources(args.models, args.models_file, args.runs_dir), args.concurrency, args.max_queue,
                      args.data_roots, args.delete_cache)
    # The server refuses larger uploads before the app sees them.
    demo.launch(server_name=args.server_name, server_port=args.port, max_file_size=MAX_UPLOAD_BYTES)
