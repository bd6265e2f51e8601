"""COLMAP sparse model (``cameras``, ``images``, ``points3D``, ``rigs``, ``frames``; ``.bin`` or ``.txt``) in
original-image pixels, written by pycolmap (``vggt_jax.geometry.colmap_io``).

* One PINHOLE camera per image (``fx fy cx cy``), sized like the original image.
* Pixel grid: COLMAP puts the centre of pixel (row i, col j) at ``(j + 0.5, i + 0.5)``; VGGT at ``(j, i)``. The
  principal point and every 2D observation are shifted by +0.5 here, so the model is exact in COLMAP's convention
  (upstream's demo skips the shift, a half-pixel error).
* ``images``: ``cam_from_world`` = the extrinsics.
* ``points3D``: the selected points, ids from 1, each observed once, in the frame it was predicted from, at the
  pixel it came from (``pixels_xy``) or, without it, where the camera projects it. This is what upstream's
  ``batch_np_matrix_to_pycolmap_wo_track`` writes: an initialisation for Gaussian splatting / NeRF pipelines. The
  bundle-adjusted model with multi-view tracks is ``vggt_jax.reconstruct`` (``infer.py --ba``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from vggt_jax.geometry import colmap_io
from vggt_jax.geometry.cameras import project_points
from vggt_jax.inference.exports._common import (
    ExportError,
    PointSelection,
    check_array,
    check_cameras,
    check_names,
    commit_files,
)


def _observations(points: PointSelection, extrinsics, intrinsics, pixels_xy, observed_xy) -> np.ndarray:
    """``[P, 2]`` observation of each point in its own frame, COLMAP pixel convention."""
    if observed_xy is not None:
        xy = check_array("observed_xy", observed_xy, (len(points), 2)).astype(np.float64)
    elif pixels_xy is not None:
        xy = points.gather(pixels_xy).astype(np.float64)
    else:
        xy, _ = project_points(points.xyz[:, None, :], extrinsics[points.frame], intrinsics[points.frame])
        xy = xy[:, 0]
    return xy + 0.5


def colmap_model_files(
    points: PointSelection,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    image_names: list[str],
    *,
    pixels_xy: np.ndarray | None = None,
    observed_xy: np.ndarray | None = None,
    fmt: Literal["bin", "txt"] = "bin",
) -> dict[str, bytes]:
    """The files of the model as ``{name: bytes}``; arguments as ``write_colmap``."""
    extrinsics, intrinsics, sizes = check_cameras(extrinsics, intrinsics, image_sizes_hw)
    count = len(extrinsics)
    names = check_names(image_names, count)
    if pixels_xy is not None:
        check_array("pixels_xy", pixels_xy, (count, None, None, 2))
    if fmt == "txt":
        try:
            colmap_io.check_text_names(names)
        except ValueError as e:
            raise ExportError(str(e)) from None
    if points.frame.max(initial=0) >= count:
        raise ExportError(f"points refer to frame {points.frame.max()} but there are {count} cameras")

    xy = _observations(points, extrinsics, intrinsics, pixels_xy, observed_xy)
    # Keypoints grouped by frame (stable, so select_points' order is kept within a frame).
    order = np.argsort(points.frame, kind="stable")
    starts = np.searchsorted(points.frame[order], np.arange(count + 1))
    rec = colmap_io.new_reconstruction(
        extrinsics, intrinsics, sizes, names, keypoints=[xy[order[starts[k] : starts[k + 1]]] for k in range(count)]
    )
    point2d_idx = np.empty(len(points), np.int64)
    point2d_idx[order] = np.arange(len(points)) - starts[points.frame[order]]
    colmap_io.add_points(rec, points.xyz, points.rgb, points.frame + 1, point2d_idx)
    return colmap_io.model_files(rec, fmt)


def write_colmap(
    directory: str | os.PathLike,
    points: PointSelection,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    image_names: list[str],
    *,
    pixels_xy: np.ndarray | None = None,
    observed_xy: np.ndarray | None = None,
    fmt: Literal["bin", "txt"] = "bin",
) -> list[Path]:
    """Write a COLMAP sparse model into ``directory`` (e.g. ``<out>/sparse/0``).

    Args:
      points: the selected points (``select_points``); ``points.frame`` indexes the cameras.
      extrinsics: ``[S, 3, 4]`` camera-from-world, OpenCV axes (= COLMAP's).
      intrinsics: ``[S, 3, 3]`` in ORIGINAL image pixels, VGGT's pixel grid (``ImageMeta.intrinsics_to_original``).
      image_sizes_hw: ``[S, 2]`` original (H, W); image_names: the names COLMAP looks for in its image folder.
      pixels_xy: ``[S, H, W, 2]`` original-image position (VGGT grid) of every dense pixel, for the observations
        (``preprocess.original_pixel_coords``); None projects each point instead.
      observed_xy: or ``[P, 2]``, the same for the selected points only (``preprocess.original_pixels``: no
        dense array, for long sequences).
      fmt: "bin" or "txt".
    """
    files = colmap_model_files(
        points,
        extrinsics,
        intrinsics,
        image_sizes_hw,
        image_names,
        pixels_xy=pixels_xy,
        observed_xy=observed_xy,
        fmt=fmt,
    )
    return commit_files(directory, files)
