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
    return parser.parse_args(argv)


def create_app(sources: ModelSources, concurrency: int = CONCURRENCY, max_queue: int = MAX_QUEUE) -> gr.Blocks:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    catalog = load_catalog(sources, device)
    for problem in catalog.problems:
        print(f"Could not load {problem}")
    demo = build_demo(catalog, Handlers(catalog, References(catalog.classifiers)))
    return demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)


def main(argv=None) -> None:
    args = parse_args(argv)
    # Requests computed at once share the cores: more threads than cores in all would slow every one of them down.
    torch.set_num_threads(max(1, torch.get_num_threads() // args.concurrency))
    demo = create_app(model_sources(args.models, args.models_file, args.runs_dir), args.concurrency, args.max_queue)
    # The server refuses larger uploads before the app sees them.
    demo.launch(server_name=args.server_name, server_port=args.port, max_file_size=MAX_UPLOAD_BYTES)
