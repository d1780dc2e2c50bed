"""Images into and out of the app: an uploaded file or a drawing becomes one model input, checked on the way in;
float images become a PNG grid large enough to see 8x8 digits.

A problem with an image raises `BadImage`, whose message says what is wrong and what to do; the handlers show it in
the page with gr.Error.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.utils import make_grid

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # the server refuses larger uploads (launch(max_file_size=...))
MAX_SIDE = 4096  # checked on the header, before any pixel is decoded: a small file can still claim huge dimensions
MIN_SIDE = 8
MAX_ASPECT_RATIO = 2.0  # a wider image is padded to a square; far wider, the digit would shrink to a line
DISPLAY_CELL_PIXELS = 64  # each image of a grid is scaled up (nearest) to at least this many pixels a side


class BadImage(ValueError):
    """An upload or drawing the app cannot use; the message is shown to the user as it is."""


def open_upload(path: str) -> Image.Image:
    """An uploaded file as a PIL image, its size checked before its pixels are decoded."""
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        raise BadImage("The uploaded file is not an image PIL can read; upload a PNG, JPEG, WebP, BMP or GIF.") from None
    except Image.DecompressionBombError:
        raise BadImage(f"The uploaded image is far too large; upload one at most {MAX_SIDE} pixels a side.") from None
    check_size(image.size)
    try:
        image.load()
    except (OSError, SyntaxError) as error:  # PIL's errors for a truncated or corrupt file
        raise BadImage(f"The uploaded image is damaged and cannot be decoded ({error}); upload it again or another one.") from None
    return image


def check_size(size: tuple[int, int]) -> None:
    width, height = size
    if max(width, height) > MAX_SIDE:
        raise BadImage(f"The image is {width}x{height} pixels; upload one at most {MAX_SIDE} pixels a side (scale it down first).")
    if min(width, height) < MIN_SIDE:
        raise BadImage(f"The image is {width}x{height} pixels; it needs at least {MIN_SIDE} pixels a side to show a digit.")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise BadImage(
            f"The image is {width}x{height} pixels, more than {MAX_ASPECT_RATIO:g} times wider than high or higher than "
            f"wide; crop it to roughly a square around the digit."
        )


def model_input(image: Image.Image, image_size: int, channels: int) -> torch.Tensor:
    """A PIL image -> uint8 (1, C, S, S), as the training data looks: the model's channels, padded to a square with its
    own border colour, resized bilinearly (as data.py resizes datasets) and, for one-channel models, light-on-dark."""
    image = image.convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if int(pixels.max()) - int(pixels.min()) < 8:
        raise BadImage("The image is blank (one flat colour); draw or upload a digit.")
    fill = tuple(int(v) for v in np.median(border.reshape(len(border), -1), axis=0))
    side = max(image.size)
    image = ImageOps.pad(image, (side, side), color=fill[0] if channels == 1 else fill)
    image = image.resize((image_size, image_size), Image.BILINEAR)
    if channels == 1 and np.mean(border) > 127:  # dark ink on light paper (a drawing, a scan): the digits are light on dark
        image = ImageOps.invert(image)
    array = np.array(image, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))[None]


def grid(images: torch.Tensor, columns: int | None = None) -> Image.Image:
    """Float images (N, C, H, W) in [0, 1] -> one PIL grid, `columns` wide (default: square), cells scaled up."""
    images = images.detach().float().cpu().clamp(0, 1)
    columns = columns or math.ceil(math.sqrt(len(images)))
    scale = max(1, math.ceil(DISPLAY_CELL_PIXELS / images.shape[-1]))
    images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest")
    picture = make_grid(images, nrow=columns, padding=2 * scale, pad_value=1.0)
    return Image.fromarray(picture.mul(255).round().byte().permute(1, 2, 0).numpy())
