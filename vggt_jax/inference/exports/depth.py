"""Depth and confidence maps as pictures.

* ``depth/<stem>.png``: 16-bit greyscale PNG, ``depth = value * unit`` with one ``unit`` for all frames (the largest
  depth maps to 65535, so frames stay comparable and no value saturates; VGGT's depth has no metric scale, so a
  fixed unit such as millimetres could not fit every scene). ``value == 0`` marks no depth. ``unit`` and the
  per-frame files are in ``depth/depth_scale.json``. Quantisation error <= unit / 2 (relative 7.6e-6 of the max).
* ``depth_preview/<stem>.png``: colour (turbo) preview, normalised per frame between the 2nd and 98th percentiles.
* ``confidence/<stem>.png``: colour (viridis) preview of ``log(conf)``, one scale shared by all frames.
The maps keep the model's resolution (``H x W`` of the model input), like the arrays in predictions.npz.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from vggt_jax.inference.exports._common import Content, ExportError, check_array, check_names, commit_files
from vggt_jax.inference.pages import frames, release_pages

UINT16_MAX = 65535


def colormap(values: np.ndarray, name: str) -> np.ndarray:
    """``[...]`` floats in [0, 1] (NaN -> black) -> ``[..., 3]`` uint8 through a matplotlib colormap."""
    try:
        import matplotlib
    except ImportError as e:
        raise ExportError(f"colour previews need matplotlib (pip install matplotlib==3.11.2): {e}") from e
    rgb = matplotlib.colormaps[name](np.nan_to_num(np.clip(values, 0.0, 1.0)))[..., :3]
    return np.where(np.isnan(values)[..., None], 0, np.round(rgb * 255)).astype(np.uint8)


def stems(image_names: Sequence[str], count: int) -> list[str]:
    """File stems for per-frame outputs, unique (``a.jpg`` and ``a.png`` would collide)."""
    out = [Path(n).stem for n in check_names(image_names, count)]
    if len(set(out)) != len(out):
        raise ExportError(f"image names give clashing file stems: {out}")
    return out


def depth_unit(depth: np.ndarray) -> float:
    """The ``unit`` of ``[S, H, W]`` depth (its largest positive finite value maps to 65535), a frame at a time."""
    largest = 0.0
    for frame in frames(depth):
        frame = np.asarray(frame, np.float64)
        valid = np.isfinite(frame) & (frame > 0)
        if valid.any():
            largest = max(largest, float(frame[valid].max()))
    if largest == 0.0:
        raise ExportError("depth has no positive finite value to export")
    return largest / UINT16_MAX


def quantize_depth(depth: np.ndarray, unit: float) -> np.ndarray:
    """Depth (any shape) -> uint16 ``round(depth / unit)`` in [1, 65535], 0 where depth <= 0 or not finite."""
    depth = np.asarray(depth, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    return np.where(valid, np.clip(np.round(np.where(valid, depth, 0) / unit), 1, UINT16_MAX), 0).astype(np.uint16)


def encode_depth(depth: np.ndarray) -> tuple[np.ndarray, float]:
    """``[S, H, W]`` depth -> (``[S, H, W]`` uint16, unit) with ``depth ~= value * unit``; 0 where depth <= 0/NaN."""
    unit = depth_unit(depth)
    return quantize_depth(depth, unit), unit


def _png(make: Callable[[], np.ndarray], source: np.ndarray) -> Callable[[BinaryIO], None]:
    """A ``commit_files`` content that renders its picture only when written (one frame in memory at a time), then
    releases ``source``'s pages if it is a memory map."""

    def write(f: BinaryIO) -> None:
        Image.fromarray(make()).save(f, format="PNG")
        release_pages(source)

    return write


def _depth_preview(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, np.float64)
    valid = np.isfinite(frame) & (frame > 0)
    low, high = np.percentile(frame[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    return colormap(np.where(valid, (frame - low) / max(high - low, 1e-12), np.nan), "turbo")


def _log_conf(frame: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(frame, np.float64), 1e-12))


def log_conf_range(conf: np.ndarray, max_samples: int = 1 << 24) -> tuple[float, float]:
    """The 1st and 99th percentiles of ``log(conf)`` over every frame (of an even subsample of at most
    ``max_samples`` pixels when there are more: long sequences), the confidence previews' shared scale."""
    stride = max(1, -(-conf.size // max_samples))
    sample = np.concatenate([_log_conf(frame).reshape(-1)[::stride] for frame in frames(conf)])
    low, high = np.percentile(sample[np.isfinite(sample)], [1, 99])
    return float(low), float(high)


def write_depth_maps(
    directory: str | os.PathLike,
    depth: np.ndarray,
    image_names: Sequence[str],
    conf: np.ndarray | None = None,
) -> list[Path]:
    """Write the depth PNGs, their scale, the previews and (with ``conf [S, H, W]``) the confidence previews.

    Args:
      depth: ``[S, H, W]`` or ``[S, H, W, 1]`` camera z in VGGT's (scene-normalised) units; a memory map is read a
        frame at a time (long sequences).
      image_names: one per frame; the output files are named after their stems.
    """
    depth = np.asarray(depth)
    if depth.ndim == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    depth = check_array("depth", depth, (None, None, None))
    names = stems(image_names, len(depth))
    unit = depth_unit(depth)
    files: dict[str, Content] = {}
    for k, stem in enumerate(names):
        files[f"depth/{stem}.png"] = _png(lambda k=k: quantize_depth(depth[k], unit), depth)
        files[f"depth_preview/{stem}.png"] = _png(lambda k=k: _depth_preview(depth[k]), depth)
    sidecar = {
        "encoding": "16-bit greyscale PNG, depth = value * unit, value 0 = no depth",
        "unit": unit,
        "depth_is": "camera z (not ray length), VGGT's scene-normalised units",
        "files": {stem: f"{stem}.png" for stem in names},
    }
    files["depth/depth_scale.json"] = json.dumps(sidecar, indent=2).encode("utf-8")
    if conf is not None:
        conf = check_array("conf", conf, depth.shape)
        low, high = log_conf_range(conf)
        for k, stem in enumerate(names):
            files[f"confidence/{stem}.png"] = _png(
                lambda k=k: colormap((_log_conf(conf[k]) - low) / max(high - low, 1e-12), "viridis"), conf
            )
    return commit_files(directory, files)


def read_depth_png(path: str | os.PathLike, unit: float) -> np.ndarray:
    """Inverse of the 16-bit encoding: ``[H, W]`` float64 depth, NaN where there is none."""
    with Image.open(path) as img:
        values = np.asarray(img, dtype=np.float64)
    return np.where(values > 0, values * unit, np.nan)
