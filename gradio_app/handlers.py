"""What each of the app's endpoints does, given plain values (a model's name, counts, files); what the page and the
API both call. The components bound what they pass (gradio refuses a number outside a slider's range, or a model not
among a dropdown's choices); what depends on the chosen model, and images, are checked here. Every problem a user
can cause ends as a gr.Error that says what to change.
"""

from __future__ import annotations

import threading

import gradio as gr
import torch

from evaluation.classifier import classifier_test_accuracy
from evaluation.fidelity import real_ceiling
from evaluation.models import ClassBaseline, fit_class_baseline
from gradio_app import explore, generation
from gradio_app.catalog import Catalog, ServedModel
from gradio_app.images import BadImage, grid, model_input, open_upload
from gradio_app.references import References, ScoringUnavailable
from stage1_autoencoders.data import load_image_data

EVERY_CLASS = "every class in turn"  # the class choice that gives a balanced grid, one class per column


def user_error(message: str) -> gr.Error:
    """A problem with what the user asked for: shown in the page, and no traceback in the server's log."""
    return gr.Error(message, print_exception=False)


def protocol(scores: dict) -> str:
    return f"{scores['is_splits']} splits of {scores['is_split_size']}"


def judge(classifier: str) -> str:
    accuracy = classifier_test_accuracy(classifier)
    return "" if accuracy is None else f" (test accuracy {accuracy:.2%})"


def withheld(scores: dict) -> str:
    return "".join(f" {key.upper()} withheld: {reason}." for key, reason in scores["withheld"].items())


class Handlers:
    def __init__(self, catalog: Catalog, references: References):
        self.catalog, self.references = catalog, references
        self._class_baselines: dict[str, tuple[ClassBaseline | None, str]] = {}
        self._class_baselines_lock = threading.Lock()

    # --- Sample, Compare priors, Score ---

    def sample(self, model: str, prior: str, num_samples: int, seed: int, temperature: float, label: str,
               progress=gr.Progress(track_tqdm=True)):
        served = self.catalog.models[model]
        images = self.draw(served, prior, num_samples, seed, temperature, label, progress)
        return grid(images, self.columns(served, prior, label, num_samples))

    def compare_priors(self, model: str, learned_prior: str, num_samples: int, seed: int,
                       progress=gr.Progress(track_tqdm=True)):
        """The baseline prior's and a learned prior's samples, each with its IS, and the IS of as many real test
        images scored the same way (the ceiling at this N). A class-conditional prior's baseline is given the
        classes too: its model's per-class baseline (evaluation.models.fit_class_baseline)."""
        served = self.catalog.models[model]
        if learned_prior not in served.learned_priors:
            raise user_error(f"{model} has no learned prior {learned_prior!r}; it has {list(served.learned_priors)}.")
        num_samples, seed = int(num_samples), int(seed)
        conditional = generation.is_conditional(served, learned_prior)
        class_baseline, class_note = self.class_baseline(served) if conditional else (None, "")
        baseline_name = served.baseline_prior if class_baseline is None else class_baseline.name
        progress(0, desc=f"sampling {num_samples} from {baseline_name}")
        if class_baseline is None:
            baseline = generation.sample(served, served.baseline_prior, num_samples, seed)
        else:
            baseline = class_baseline.sample(num_samples, seed)
        progress(0.3, desc=f"sampling {num_samples} from {learned_prior}")
        learned = generation.sample(served, learned_prior, num_samples, seed, progress=True)
        progress(0.7, desc="scoring with the classifier")
        try:
            baseline_scores = self.references.score(served, baseline, seed, with_fid=False)
            learned_scores = self.references.score(served, learned, seed, with_fid=False)
        except ScoringUnavailable as reason:
            baseline_is = learned_is = real_is = None
            note = f"No Inception Score: {reason}"
        else:
            baseline_is, learned_is = baseline_scores["is"], learned_scores["is"]
            reference = self.references.for_model(served)
            real_is, ceiling = self.ceiling(reference, num_samples, seed)
            if not conditional:
                given = ""
            elif class_baseline is None:
                given = (f" {learned_prior} is given the classes (every class in turn) and {served.baseline_prior} is "
                         f"not: no per-class baseline, as {class_note}.")
            else:
                given = f" Both are given the classes (every class in turn): the baseline is {class_note}."
            note = (f"N = {num_samples} samples each, IS over {protocol(learned_scores)}, from "
                    f"{reference.classifier_note}{judge(reference.classifier)}; {ceiling}. Higher is better: "
                    f"confident and varied classes.{withheld(learned_scores)}{given}")
        columns = self.columns(served, learned_prior, EVERY_CLASS, num_samples)
        return grid(baseline, columns), baseline_is, grid(learned, columns), learned_is, real_is, note

    def class_baseline(self, served: ServedModel) -> tuple[ClassBaseline | None, str]:
        """The model's class-conditional baseline, fitted to its dataset's train split on first use as the
        evaluation report fits it at seed 0, and kept; or None and why not."""
        with self._class_baselines_lock:  # one fit per model, however many requests ask at once
            if served.name not in self._class_baselines:
                self._class_baselines[served.name] = self._fit_class_baseline(served)
            return self._class_baselines[served.name]

    def _fit_class_baseline(self, served: ServedModel) -> tuple[ClassBaseline | None, str]:
        if served.dataset is None:
            return None, f"{served.source} names no dataset to fit one to"
        try:  # the train split at the model's size, split as the report's seed 0 splits it
            train = load_image_data(served.dataset, max_test_samples=1)
            if train.resolution != served.model.image_size:
                train = load_image_data(served.dataset, resolution=served.model.image_size, max_test_samples=1)
            if train.train_labels is None:
                return None, f"{served.dataset} has no labels"
            baseline = fit_class_baseline(served.model, train.train_images, train.train_labels, train.num_classes, seed=0)
        except Exception as error:  # a dataset not on this machine, a Hub dataset out of reach, ...
            return None, f"the train split of {served.dataset} could not be used: {error}"
        return baseline, f"the {baseline.name} of the train split of {served.dataset}, as in the evaluation report"

    def ceiling(self, reference, num_samples: int, seed: int) -> tuple[float | None, str]:
        """The IS of `num_samples` real test images with the samples' splits and seed, and what it is."""
        if reference.test_images is None:
            return None, f"no real test split to score as the ceiling ({reference.test_split_note})"
        if reference.judge is None:
            return None, f"no classifier to score the ceiling with ({reference.classifier_note})"
        scores = real_ceiling(reference.judge, reference.test_features, num_samples, seed)
        if scores["is"] is None:
            return None, f"no ceiling: {scores['withheld']['is']}"
        shortfall = f", as {scores['note']}" if scores["note"] else ""
        return scores["is"], f"the ceiling is the IS of {scores['num_samples']} real test images scored alike{shortfall}"

    def score(self, model: str, prior: str, num_samples: int, seed: int, temperature: float, label: str,
              progress=gr.Progress(track_tqdm=True)):
        """IS (and FID where the test split is at hand) of `num_samples` samples, and what they were measured with."""
        served = self.catalog.models[model]
        images = self.draw(served, prior, num_samples, seed, temperature, label, progress)
        progress(0.8, desc="scoring with the classifier")
        try:
            scores = self.references.score(served, images, int(seed), with_fid=True)
        except ScoringUnavailable as reason:
            raise user_error(str(reason)) from None
        reference = self.references.for_model(served)
        fid_note = (f"FID against the {reference.test_split_note}" if "fid" in scores else
                    f"no FID: {reference.test_split_note}")
        note = (f"N = {num_samples} samples of {model} + {prior}, IS over {protocol(scores)}, scored with "
                f"{reference.classifier_note}{judge(reference.classifier)}; {fid_note}.{withheld(scores)}")
        return scores["is"], scores["is_std"], scores.get("fid"), note

    # --- Explore ---

    def reconstruct(self, model: str, upload: str | None, drawing: dict | None):
        served = self.catalog.models[model]
        return grid(explore.reconstruct(served.model, self.image_input(served, upload, drawing)), columns=2)

    def interpolate(self, model: str, upload_a: str | None, drawing_a: dict | None, upload_b: str | None,
                    drawing_b: dict | None, steps: int):
        served = self.catalog.models[model]
        start = self.image_input(served, upload_a, drawing_a, "the first image")
        end = self.image_input(served, upload_b, drawing_b, "the second image")
        return grid(explore.interpolate(served.model, start, end, int(steps)), columns=int(steps) + 2)

    def decode_latent(self, model: str, *values: float):
        served = self.catalog.models[model]
        return grid(explore.decode_latent(served.model, list(values)), columns=1)

    def traverse(self, model: str, *values: float):
        served = self.catalog.models[model]
        return grid(explore.traversal(served.model, list(values)), columns=explore.TRAVERSAL_STEPS)

    def code_map(self, model: str, upload: str | None, drawing: dict | None):
        served = self.catalog.models[model]
        figure, indices = explore.code_map(served.model, self.image_input(served, upload, drawing))
        return grid(figure, columns=3), indices.tolist()

    # --- checks shared by the endpoints ---

    def draw(self, served: ServedModel, prior: str, num_samples: int, seed: int, temperature: float, label: str,
             progress) -> torch.Tensor:
        """The prior dropdown offers every model's priors (the page narrows them to the chosen model's)."""
        if prior not in served.priors:
            raise user_error(f"{served.name} has no prior {prior!r}; its priors are {served.priors}.")
        label_value = None
        if generation.is_conditional(served, prior) and label != EVERY_CLASS:
            num_classes = served.learned_priors[prior].prior.num_classes
            if label not in [str(index) for index in range(num_classes)]:
                raise user_error(f"class {label!r}: {prior} knows classes 0 to {num_classes - 1}, or {EVERY_CLASS!r}.")
            label_value = int(label)
        progress(0, desc=f"sampling {num_samples} from {prior}")
        return generation.sample(served, prior, int(num_samples), int(seed), temperature, label_value, progress=True)

    def columns(self, served: ServedModel, prior: str, label: str, num_samples: int) -> int | None:
        """One column per class when a conditional prior draws every class in turn; otherwise a square grid."""
        if generation.is_conditional(served, prior) and label == EVERY_CLASS:
            return min(num_samples, served.learned_priors[prior].prior.num_classes)
        return None

    def image_input(self, served: ServedModel, upload: str | None, drawing: dict | None,
                    which: str = "an image") -> torch.Tensor:
        """The upload if there is one, else the drawing, as the model's input (1, C, S, S) uint8."""
        composite = (drawing or {}).get("composite")
        if upload is None and composite is None:
            raise user_error(f"Give {which}: upload a file or draw a digit.")
        try:
            image = open_upload(upload) if upload is not None else composite
            return model_input(image, served.model.image_size, served.model.in_channels)
        except BadImage as problem:
            raise user_error(str(problem)) from None

