"""The page: four tabs (Sample, Compare priors, Score, Explore) wired to the handlers, each action also an API
endpoint named after it (/sample, /compare_priors, /score, /reconstruct, /interpolate, /decode_latent, /traverse,
/code_map). The events that only update controls when a model or prior is chosen are private to the page.
"""

from __future__ import annotations

import gradio as gr

from evaluation.fidelity import IS_SPLIT_SIZE
from gradio_app import explore, generation
from gradio_app.catalog import Catalog, ServedModel
from gradio_app.handlers import EVERY_CLASS, Handlers

MAX_SAMPLES_SHOWN = 256
MAX_COMPARED_SAMPLES = 1000
MIN_SCORED_SAMPLES = IS_SPLIT_SIZE  # IS is a mean over splits of this many samples: fewer give no IS
MAX_SCORED_SAMPLES = 2000
MAX_SEED = 2**31 - 1
MAX_INTERPOLATION_STEPS = 16
MAX_LATENT_SLIDERS = 32  # latents beyond this stay at 0 in the sliders' decodings
TEMPERATURE_RANGE = (0.1, 2.0)
VARIATIONAL_TYPES = ("vae", "beta_vae")
EXPLORE_HEIGHT = 240  # pixels: small outputs are scaled up to this height

INTRO = """# twostage
Stage 1 autoencoders (AE, VAE, β-VAE, VQ-VAE) and the stage-2 priors learned over their latents (a gated PixelCNN over
VQ-VAE codes, a Gaussian mixture over continuous latents). Sample them, set a learned prior beside the N(0, I) or
uniform one it replaces, score them by Inception Score, and look inside the latent spaces."""

NO_MODELS = """## No models to show yet
Nothing from {origin} could be loaded. To get models:

* train every model and prior on the bundled digits (a few minutes on a CPU), then start the app again, which reads `runs/`:
  ```bash
  bash run_pipeline.sh
  python app.py
  ```
* or train one: `accelerate launch stage1_autoencoders/train.py --model vqvae --output_dir runs/vqvae`, then its prior:
  `accelerate launch stage2_prior/train.py --vqvae runs/vqvae --conditional --output_dir runs/vqvae-pixelcnn`;
* or name run folders or Hub ids: `python app.py --models runs/vae user/mnist-vqvae-pixelcnn`, the `TWOSTAGE_MODELS`
  environment variable (a Space's variable), or one per line in `app_models.txt`.
"""


def build_demo(catalog: Catalog, handlers: Handlers) -> gr.Blocks:
    with gr.Blocks(title="twostage") as demo:
        gr.Markdown(INTRO)
        if catalog.problems:
            gr.Markdown("**Could not load:**\n" + "\n".join(f"* {problem}" for problem in catalog.problems))
        if not catalog.models:
            gr.Markdown(NO_MODELS.format(origin=f"`{catalog.origin}`"))
            return demo
        gr.Markdown(f"Models from `{catalog.origin}`: " + "; ".join(
            f"**{served.name}** with {', '.join(served.priors)}" for served in catalog.models.values()))
        with gr.Tab("Sample"):
            sample_tab(catalog, handlers)
        with gr.Tab("Compare priors"):
            compare_tab(catalog, handlers)
        with gr.Tab("Score"):
            score_tab(catalog, handlers)
        with gr.Tab("Explore"):
            explore_tab(catalog, handlers)
    return demo


def model_dropdown(models: list[ServedModel]) -> gr.Dropdown:
    return gr.Dropdown([(served.label, served.name) for served in models], value=models[0].name, label="Model")


def sampling_controls(catalog: Catalog, max_samples: int, default_samples: int, min_samples: int = 1):
    """Model, prior, number, seed, temperature (PixelCNN) and class (conditional prior), which show and hide
    themselves as the model and prior change. Every model's priors are valid choices for the API; the page offers
    the chosen model's."""
    models = list(catalog.models.values())
    all_priors = list(dict.fromkeys(prior for served in models for prior in served.priors))
    max_classes = max((generator.prior.num_classes for served in models for name, generator in served.learned_priors.items()
                       if generation.is_conditional(served, name)), default=0)
    first, first_prior = models[0], models[0].priors[-1]
    model = model_dropdown(models)
    prior = gr.Dropdown(all_priors, value=first_prior, label="Prior")
    num_samples = gr.Slider(min_samples, max_samples, value=default_samples, step=1, precision=0, label="Number of samples")
    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
    temperature = gr.Slider(*TEMPERATURE_RANGE, value=1.0, step=0.05, label="Temperature (PixelCNN)",
                            visible=generation.takes_temperature(first, first_prior))
    label = gr.Dropdown([EVERY_CLASS] + [str(index) for index in range(max_classes)], value=EVERY_CLASS,
                        label="Class (conditional prior)", visible=generation.is_conditional(first, first_prior))

    def prior_controls(model_name: str, prior_name: str):
        served = catalog.models[model_name]
        return (gr.update(visible=generation.takes_temperature(served, prior_name)),
                gr.update(visible=generation.is_conditional(served, prior_name)))

    def model_changed(model_name: str):
        served = catalog.models[model_name]
        return (gr.update(choices=served.priors, value=served.priors[-1]),
                *prior_controls(model_name, served.priors[-1]))

    model.change(model_changed, model, [prior, temperature, label], api_visibility="private")
    prior.change(prior_controls, [model, prior], [temperature, label], api_visibility="private")
    return model, prior, num_samples, seed, temperature, label


def sample_tab(catalog: Catalog, handlers: Handlers) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            model, prior, num_samples, seed, temperature, label = sampling_controls(catalog, MAX_SAMPLES_SHOWN, 64)
            button = gr.Button("Sample", variant="primary")
        with gr.Column(scale=2):
            samples = gr.Image(label="Samples", type="pil", format="png", interactive=False, height=560, elem_id="samples")
    button.click(handlers.sample, [model, prior, num_samples, seed, temperature, label], samples, api_name="sample")


def compare_tab(catalog: Catalog, handlers: Handlers) -> None:
    with_priors = [served for served in catalog.models.values() if served.learned_priors]
    if not with_priors:
        gr.Markdown("No model here has a learned prior yet. Fit a Gaussian mixture to an AE, VAE or β-VAE with "
                    "`python -m stage2_prior.fit_mixture --autoencoder RUN --output_dir RUN-gmm`, or train a PixelCNN over "
                    "a VQ-VAE's codes with `accelerate launch stage2_prior/train.py --vqvae RUN --output_dir RUN-pixelcnn`, "
                    "and list it with the models.")
        return
    learned_names = list(dict.fromkeys(prior for served in with_priors for prior in served.learned_priors))
    with gr.Row():
        model = model_dropdown(with_priors)
        learned_prior = gr.Dropdown(learned_names, value=next(iter(with_priors[0].learned_priors)), label="Learned prior")
        num_samples = gr.Slider(MIN_SCORED_SAMPLES, MAX_COMPARED_SAMPLES, value=100, step=1, precision=0,
                                label="Samples per prior")
        seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
    button = gr.Button("Compare", variant="primary")
    with gr.Row():
        with gr.Column():
            baseline = gr.Image(label="Baseline prior: N(0, I) or uniform codes; per-class for a class-conditional prior", type="pil", format="png",
                                interactive=False, height=420, elem_id="baseline-samples")
            baseline_is = gr.Number(label="Inception Score, baseline prior", precision=2, interactive=False,
                                    elem_id="baseline-is")
        with gr.Column():
            learned = gr.Image(label="Learned prior", type="pil", format="png", interactive=False, height=420,
                               elem_id="learned-samples")
            learned_is = gr.Number(label="Inception Score, learned prior", precision=2, interactive=False,
                                   elem_id="learned-is")
    real_is = gr.Number(label="Inception Score of as many real test images (the ceiling at this N)", precision=2,
                        interactive=False, elem_id="real-is")
    note = gr.Markdown(label="How the scores were measured")
    model.change(lambda name: gr.update(choices=list(catalog.models[name].learned_priors),
                                        value=next(iter(catalog.models[name].learned_priors))),
                 model, learned_prior, api_visibility="private")
    button.click(handlers.compare_priors, [model, learned_prior, num_samples, seed],
                 [baseline, baseline_is, learned, learned_is, real_is, note], api_name="compare_priors")


def score_tab(catalog: Catalog, handlers: Handlers) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            model, prior, num_samples, seed, temperature, label = sampling_controls(
                catalog, MAX_SCORED_SAMPLES, 500, min_samples=MIN_SCORED_SAMPLES)
            button = gr.Button("Score", variant="primary")
        with gr.Column(scale=1):
            inception = gr.Number(label="Inception Score (higher is better)", precision=3, interactive=False)
            inception_std = gr.Number(label=f"IS standard deviation over splits of {IS_SPLIT_SIZE}", precision=3, interactive=False)
            fid = gr.Number(label="FID against the test split (lower is better)", precision=3, interactive=False)
            note = gr.Markdown(label="How the scores were measured")
    button.click(handlers.score, [model, prior, num_samples, seed, temperature, label],
                 [inception, inception_std, fid, note], api_name="score")


def image_source(which: str = "Image"):
    """An upload or a drawing; the handlers take the upload if there is one."""
    with gr.Tab(f"{which}: upload"):
        upload = gr.File(label="An image file (PNG, JPEG, ...)", file_types=["image"], type="filepath")
    with gr.Tab(f"{which}: draw"):
        # Flattened on white as RGB (the default RGBA would leave black ink on a transparent, black, background).
        drawing = gr.Sketchpad(label="Draw a digit (pick the brush first)", type="pil", image_mode="RGB",
                               canvas_size=(280, 280), brush=gr.Brush(default_size=10, colors=["#000000"], color_mode="fixed"))
    return upload, drawing


def explore_tab(catalog: Catalog, handlers: Handlers) -> None:
    models = list(catalog.models.values())
    gr.Markdown("Images are turned into what the model was trained on: its size and channels, and light ink on a dark "
                "background (a light image is inverted).")
    with gr.Tab("Reconstruct"):
        model = model_dropdown(models)
        upload, drawing = image_source()
        button = gr.Button("Reconstruct", variant="primary")
        output = gr.Image(label="The model's input and its reconstruction", type="pil", format="png", interactive=False,
                          height=EXPLORE_HEIGHT)
        button.click(handlers.reconstruct, [model, upload, drawing], output, api_name="reconstruct")
    with gr.Tab("Interpolate"):
        model = model_dropdown(models)
        with gr.Row():
            with gr.Column():
                upload_a, drawing_a = image_source("First")
            with gr.Column():
                upload_b, drawing_b = image_source("Second")
        steps = gr.Slider(2, MAX_INTERPOLATION_STEPS, value=8, step=1, precision=0, label="Steps between the two")
        button = gr.Button("Interpolate", variant="primary")
        output = gr.Image(label="First image, the path decoded, second image", type="pil", format="png", interactive=False,
                          height=EXPLORE_HEIGHT)
        button.click(handlers.interpolate, [model, upload_a, drawing_a, upload_b, drawing_b, steps], output,
                     api_name="interpolate")
    variational = [served for served in models if served.model_type in VARIATIONAL_TYPES]
    if variational:
        with gr.Tab("Latent sliders (β-VAE)"):
            latent_sliders_tab(catalog, handlers, variational)
    vqvaes = [served for served in models if served.model_type == "vqvae"]
    if vqvaes:
        with gr.Tab("Code map (VQ-VAE)"):
            model = model_dropdown(vqvaes)
            upload, drawing = image_source()
            button = gr.Button("Show codes", variant="primary")
            with gr.Row():
                figure = gr.Image(label="Image, reconstruction, codes (one colour a code)", type="pil", format="png",
                                  interactive=False, height=EXPLORE_HEIGHT)
                indices = gr.Dataframe(label="Code indices", type="array", interactive=False)
            button.click(handlers.code_map, [model, upload, drawing], [figure, indices], api_name="code_map")


def latent_sliders_tab(catalog: Catalog, handlers: Handlers, variational: list[ServedModel]) -> None:
    count = min(MAX_LATENT_SLIDERS, max(served.model.latent_dim for served in variational))
    model = model_dropdown(variational)
    gr.Markdown(f"Set each latent by hand; the image decodes as a slider is released. The traversal sweeps every latent "
                f"from -{explore.TRAVERSAL_SPAN:g} to {explore.TRAVERSAL_SPAN:g} (one row each) around the sliders' point.")
    with gr.Row():
        with gr.Column(scale=2):
            sliders = [gr.Slider(-explore.TRAVERSAL_SPAN, explore.TRAVERSAL_SPAN, value=0.0, step=0.05, label=f"z{index}",
                                 visible=index < variational[0].model.latent_dim) for index in range(count)]
        with gr.Column(scale=1):
            decoded = gr.Image(handlers.decode_latent(variational[0].name), label="Decoded", type="pil", format="png",
                               interactive=False, height=EXPLORE_HEIGHT)
            button = gr.Button("Traverse every latent", variant="primary")
    traversal = gr.Image(label="Traversals: one row per latent", type="pil", format="png", interactive=False)

    def model_changed(name: str):
        latent_dim = catalog.models[name].model.latent_dim
        return [gr.update(value=0.0, visible=index < latent_dim) for index in range(count)]

    gr.on([slider.release for slider in sliders], handlers.decode_latent, [model, *sliders], decoded,
          api_name="decode_latent")
    model.change(model_changed, model, sliders, api_visibility="private").then(
        handlers.decode_latent, [model, *sliders], decoded, api_visibility="private")
    button.click(handlers.traverse, [model, *sliders], traversal, api_name="traverse")
