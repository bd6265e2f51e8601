"""VGGT-Omega's preprocessing (``vggt_omega/utils/load_fn.py``), pixel for pixel: modes "balanced" (about
``(image_resolution / patch_size)^2`` patches whatever the aspect ratio) and "max_size" (the long side becomes
``image_resolution``), at any resolution that is a multiple of the patch size.

Sources, decoding and the bookkeeping are VGGT's (``vggt_jax.inference.preprocess``: a folder, pattern, list, image
or video; transparency composited on white; one ``ImageMeta`` per image). Upstream composites only mode RGBA (LA and
palette images with transparency lose their alpha there); we composite every transparent mode, as for VGGT.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from vggt_jax.inference.preprocess import Fitted, ImageMeta, Source, fit_and_pad

OMEGA_MODES = ("balanced", "max_size")


def aspect_crop(width: int, height: int) -> tuple[int, int, int, int]:
    """Upstream's centred crop to an aspect ratio (h / w) within [0.5, 2]: ``(left, top, crop_w, crop_h)``."""
    ar = height / max(width, 1)
    if ar < 0.5:
        crop_w = min(width, max(1, round(height / 0.5)))
        return (width - crop_w) // 2, 0, crop_w, height
    if ar > 2.0:
        crop_h = min(height, max(1, round(2 * width)))
        return 0, (height - crop_h) // 2, width, crop_h
    return 0, 0, width, height


def target_size(width: int, height: int, mode: str, image_resolution: int, patch_size: int) -> tuple[int, int]:
    """``(H, W)`` of one (cropped) image; both rounding steps are numpy's half to even, as upstream's."""
    ar = height / max(width, 1)
    if mode == "balanced":
        tokens = (image_resolution / patch_size) ** 2
        w_p = math.sqrt(tokens / ar)
        h_p = tokens / w_p
        return int(max(1, np.round(h_p))) * patch_size, int(max(1, np.round(w_p))) * patch_size

    def r(v: float) -> int:
        return int(max(patch_size, np.round(v / patch_size) * patch_size))

    if ar >= 1:
        return image_resolution, r(image_resolution / ar)
    return r(image_resolution * ar), image_resolution


def load_and_preprocess_images_omega(
    source: Source,
    mode: str = "balanced",
    image_resolution: int = 512,
    patch_size: int = 16,
    *,
    fps: float = 1.0,
    max_frames: int | None = None,
    into: str | os.PathLike | None = None,
) -> tuple[np.ndarray, list[ImageMeta]]:
    """Upstream's ``load_and_preprocess_images`` of VGGT-Omega -> ``images [N, 3, H, W] float32`` in [0, 1] (equal
    bit for bit to upstream's tensor) and one ``ImageMeta`` per image. Images of different sizes are padded with
    white (1.0) to the largest H and W, centred, with a warning. The 256-px text model is meant for
    ``image_resolution=256``. ``into``: write the images to this ``.npy`` file, memory-mapped (``fit_and_pad``)."""
    if mode not in OMEGA_MODES:
        raise ValueError(f"mode must be one of {OMEGA_MODES} for VGGT-Omega, got {mode!r}")
    if image_resolution <= 0 or patch_size <= 0:
        raise ValueError(f"image_resolution and patch_size must be positive, got {image_resolution}, {patch_size}")
    if image_resolution % patch_size:
        raise ValueError(f"image_resolution {image_resolution} is not a multiple of the patch size {patch_size}")

    def fit(rgb: Image.Image, name: str) -> Fitted:
        del name
        width, height = rgb.size
        left, top, crop_w, crop_h = aspect_crop(width, height)
        cropped = rgb.crop((left, top, left + crop_w, top + crop_h)) if (crop_w, crop_h) != (width, height) else rgb
        new_h, new_w = target_size(crop_w, crop_h, mode, image_resolution, patch_size)
        scale = (new_w / crop_w, new_h / crop_h)
        pixels = np.asarray(cropped.resize((new_w, new_h), Image.Resampling.BICUBIC))
        return Fitted(pixels, (height, width), scale, (-left * scale[0], -top * scale[1]), (0, 0, new_w, new_h))

    return fit_and_pad(source, fit, fps=fps, max_frames=max_frames, into=into)
