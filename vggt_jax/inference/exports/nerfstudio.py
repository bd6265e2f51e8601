"""``transforms.json`` in nerfstudio's convention (also read by instant-ngp-style and gsplat/splatfacto loaders).

* ``transform_matrix``: camera-to-world 4x4 with OpenGL camera axes (x right, y up, z backward: the camera looks
  down -z), in VGGT's world frame (camera 0's frame), the frame of ``points.ply`` and the COLMAP export.
* Per-frame intrinsics ``fl_x, fl_y, cx, cy, w, h`` in original-image pixels. nerfstudio casts rays through pixel
  centres at ``(j + 0.5, i + 0.5)``, VGGT's grid has them at ``(j, i)``: ``cx, cy`` carry the +0.5 shift.
* ``camera_model`` is OPENCV with zero distortion (what ``ns-process-data`` writes; VGGT predicts none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vggt_jax.geometry.cameras import (
    closed_form_inverse_se3,
    intrinsics_to_corner_convention,
    opencv_to_opengl_cam_to_world,
)
from vggt_jax.inference.exports._common import check_cameras, check_names, commit_files


def transforms_dict(
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    file_paths: Sequence[str],
    *,
    ply_file_path: str | None = None,
) -> dict:
    """The transforms.json content; arguments as ``write_transforms_json``."""
    extrinsics, intrinsics, sizes = check_cameras(extrinsics, intrinsics, image_sizes_hw)
    count = len(extrinsics)
    intrinsics = intrinsics_to_corner_convention(intrinsics)
    paths = check_names(file_paths, count)
    cam_to_world = opencv_to_opengl_cam_to_world(closed_form_inverse_se3(extrinsics))
    frames = []
    for k in range(count):
        frames.append(
            {
                "file_path": paths[k],
                "transform_matrix": cam_to_world[k].tolist(),
                "fl_x": float(intrinsics[k, 0, 0]),
                "fl_y": float(intrinsics[k, 1, 1]),
                "cx": float(intrinsics[k, 0, 2]),
                "cy": float(intrinsics[k, 1, 2]),
                "w": int(sizes[k, 1]),
                "h": int(sizes[k, 0]),
                "k1": 0.0,
                "k2": 0.0,
                "p1": 0.0,
                "p2": 0.0,
            }
        )
    content: dict = {"camera_model": "OPENCV", "frames": frames}
    if ply_file_path is not None:
        content["ply_file_path"] = ply_file_path  # splatfacto initialises its Gaussians from it
    return content


def write_transforms_json(
    directory: str | os.PathLike,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    file_paths: Sequence[str],
    *,
    ply_file_path: str | None = None,
    filename: str = "transforms.json",
) -> Path:
    """Write ``transforms.json``.

    Args:
      extrinsics: ``[S, 3, 4]`` camera-from-world, OpenCV axes.
      intrinsics: ``[S, 3, 3]`` in original-image pixels, VGGT's pixel grid (``ImageMeta.intrinsics_to_original``).
      image_sizes_hw: ``[S, 2]`` original (H, W).
      file_paths: per frame, the image path relative to ``directory`` (e.g. ``images/0001.jpg``).
      ply_file_path: optional point cloud in the same world frame, relative to ``directory``.
    """
    content = transforms_dict(extrinsics, intrinsics, image_sizes_hw, file_paths, ply_file_path=ply_file_path)
    return commit_files(directory, {filename: json.dumps(content, indent=2).encode("utf-8")})[0]
