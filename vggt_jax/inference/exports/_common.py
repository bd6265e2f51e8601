"""What every exporter shares: all-or-nothing file writes, input checks, colours and the point selection.

Writers build every file's bytes in memory first and only then touch the output directory, through
``commit_files``: each file goes to a temporary name beside its target and is renamed into place once all of them
are written, so an exception (bad input, full disk) leaves no partial file behind. Making the whole output folder
appear atomically (temp folder, then rename) is the caller's job.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vggt_jax.inference.pages import release_pages


class ExportError(ValueError):
    """Predictions that cannot be exported as given (shapes, names, empty point sets); the message says which."""


Content = bytes | Callable[[BinaryIO], None]


def commit_files(directory: str | os.PathLike, files: Mapping[str, Content]) -> list[Path]:
    """Write ``{relative name: content}`` under ``directory`` all-or-nothing; returns the paths written. A content
    is bytes, or a function that writes into the open file (large arrays: no second copy in memory)."""
    root = Path(directory)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((Path(tmp), target))
            with os.fdopen(fd, "wb") as f:
                if callable(content):
                    content(f)
                else:
                    f.write(content)
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [target for _, target in staged]


def check_array(name: str, array: np.ndarray, shape: Sequence[int | None]) -> np.ndarray:
    """``array`` as numpy with ``shape`` (None = any size); raises ExportError naming the argument otherwise."""
    array = np.asarray(array)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape, strict=True)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ExportError(f"{name} must have shape {want}, got {list(array.shape)}")
    return array


def check_cameras(
    extrinsics: np.ndarray, intrinsics: np.ndarray, image_sizes_hw: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera arguments every exporter takes, as float64 ``extrinsics [S, 3, 4]``, ``intrinsics [S, 3, 3]`` and
    int64 ``image_sizes_hw [S, 2]``; raises ExportError naming the argument whose shape is wrong."""
    count = len(check_array("extrinsics", extrinsics, (None, 3, 4)))
    return (
        np.asarray(extrinsics, np.float64),
        check_array("intrinsics", intrinsics, (count, 3, 3)).astype(np.float64),
        check_array("image_sizes_hw", image_sizes_hw, (count, 2)).astype(np.int64),
    )


def check_names(image_names: Sequence[str], count: int) -> list[str]:
    """Image names are keys in COLMAP models and transforms.json: one per frame, unique, non-empty."""
    names = [str(n) for n in image_names]
    if len(names) != count:
        raise ExportError(f"got {len(names)} image names for {count} frames")
    if len(set(names)) != len(names) or any(not n or "\n" in n for n in names):
        raise ExportError(f"image names must be unique single-line strings, got {names}")
    return names


def to_uint8_colors(colors: np.ndarray) -> np.ndarray:
    """``[..., 3]`` uint8, or float in [0, 1] (rounded), -> uint8. Channels-first ``[S, 3, H, W]`` images (the
    model input) are accepted and moved last."""
    colors = np.asarray(colors)
    if colors.ndim == 4 and colors.shape[1] == 3 and colors.shape[-1] != 3:
        colors = colors.transpose(0, 2, 3, 1)
    if colors.dtype == np.uint8:
        return colors
    return np.round(np.clip(colors.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class PointSelection:
    """Dense pixels kept for export, ``P`` of them: ``frame, row, col [P]`` int, ``xyz [P, 3]`` float64,
    ``rgb [P, 3]`` uint8, ``conf [P]``."""

    frame: np.ndarray
    row: np.ndarray
    col: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    conf: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def gather(self, dense: np.ndarray) -> np.ndarray:
        """Per-pixel ``[S, H, W, ...]`` -> the selected points' values ``[P, ...]``."""
        return np.asarray(dense)[self.frame, self.row, self.col]


def select_points(
    points: np.ndarray,
    conf: np.ndarray,
    colors: np.ndarray,
    *,
    conf_percentile: float = 50.0,
    min_conf: float = 1e-5,
    mask: np.ndarray | None = None,
    max_points: int | None = None,
    seed: int = 0,
) -> PointSelection:
    """Confidence-filtered points, as upstream's demos filter them.

    Args:
      points: ``[S, H, W, 3]`` world points (point head or unprojected depth).
      conf: ``[S, H, W]`` their confidence (VGGT's is ``1 + exp(.)`` >= 1).
      colors: ``[S, H, W, 3]`` uint8 or float in [0, 1] (or the ``[S, 3, H, W]`` model input).
      conf_percentile: drop the points below this percentile of ``conf`` over all frames (upstream's demos: 50).
      min_conf: and those with ``conf <= min_conf``, as upstream.
      mask: ``[S, H, W]`` bool, False drops a pixel (e.g. ``ImageMeta.content_mask()`` to drop padding).
      max_points: keep at most this many, a uniform random subset (``seed``), to bound file sizes.
    """
    points = check_array("points", points, (None, None, None, 3))
    shape = points.shape[:3]
    conf = check_array("conf", conf, shape)
    colors = check_array("colors", to_uint8_colors(colors), shape + (3,))
    keep = np.isfinite(points).all(-1) & np.isfinite(conf) & (conf > min_conf)
    if mask is not None:
        keep &= check_array("mask", mask, shape).astype(bool)
    if conf_percentile > 0 and keep.any():
        keep &= conf >= np.percentile(conf[keep], conf_percentile)
    frame, row, col = np.nonzero(keep)
    if max_points is not None and len(frame) > max_points:
        chosen = np.sort(np.random.default_rng(seed).choice(len(frame), max_points, replace=False))
        frame, row, col = frame[chosen], row[chosen], col[chosen]
    if len(frame) == 0:
        raise ExportError("no point passes the confidence filter (lower conf_percentile, or check the mask)")
    return PointSelection(
        frame, row, col, points[frame, row, col].astype(np.float64), colors[frame, row, col], conf[frame, row, col]
    )


def select_points_per_frame(
    points: np.ndarray,
    conf: np.ndarray,
    colors: np.ndarray,
    *,
    conf_percentile: float = 50.0,
    min_conf: float = 1e-5,
    mask: np.ndarray | None = None,
    max_points: int | None = None,
    seed: int = 0,
) -> PointSelection:
    """``select_points`` one frame at a time, for memory-mapped predictions of long sequences (windowed inference):
    the confidence percentile is each frame's own and every frame keeps at most ``max_points / S`` points, so no
    more than one frame's arrays are read at once."""
    num_frames = len(points)
    budget = None if max_points is None else max(1, max_points // num_frames)
    rng = np.random.default_rng(seed)
    parts = []
    for f in range(num_frames):
        try:
            part = select_points(
                np.asarray(points[f : f + 1]),
                np.asarray(conf[f : f + 1]),
                np.asarray(colors[f : f + 1]),
                conf_percentile=conf_percentile,
                min_conf=min_conf,
                mask=None if mask is None else mask[f : f + 1],
                max_points=budget,
                seed=int(rng.integers(2**31)),
            )
        except ExportError:
            continue
        finally:
            if f % 8 == 7 or f == num_frames - 1:
                release_pages(points, conf, colors)
        parts.append(dataclasses.replace(part, frame=np.full(len(part), f)))
    if not parts:
        raise ExportError("no point passes the confidence filter (lower conf_percentile, or check the mask)")
    fields = [f.name for f in dataclasses.fields(PointSelection)]
    return PointSelection(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in fields})


def scene_scale(xyz: np.ndarray) -> float:
    """A robust size of the point cloud (2-98 percentile box diagonal), for drawing cameras at a sensible size."""
    low, high = np.percentile(xyz, [2, 98], axis=0)
    return float(np.linalg.norm(high - low)) or 1.0


def frustum_corners(extrinsics: np.ndarray, intrinsics: np.ndarray, sizes_hw: np.ndarray, depth: float) -> np.ndarray:
    """World positions ``[S, 5, 3]`` of each camera's centre and its image corners pushed to camera z = ``depth``
    (order: centre, top-left, top-right, bottom-right, bottom-left). Intrinsics in VGGT's pixel grid."""
    from vggt_jax.geometry.cameras import closed_form_inverse_se3

    cam_to_world = closed_form_inverse_se3(extrinsics)
    out = []
    for c2w, k, (h, w) in zip(cam_to_world, intrinsics, sizes_hw, strict=True):
        pixels = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]])
        cam = np.linalg.solve(k, pixels.T).T * depth
        corners = np.concatenate([np.zeros((1, 3)), cam]) @ c2w[:3, :3].T + c2w[:3, 3]
        out.append(corners)
    return np.stack(out)
