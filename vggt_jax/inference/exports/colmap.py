"""COLMAP sparse model (``cameras``, ``images``, ``points3D``; ``.bin`` or ``.txt``) in original-image pixels.

Written with numpy from the format's specification (COLMAP's ``reconstruction_io``), so exporting needs no pycolmap;
COLMAP >= 3.12 and pycolmap read it as a legacy model (no ``rigs``/``frames`` files: one trivial rig per camera).

* One PINHOLE camera per image (``fx fy cx cy``), sized like the original image.
* Pixel grid: COLMAP puts the centre of pixel (row i, col j) at ``(j + 0.5, i + 0.5)``; VGGT at ``(j, i)``. The
  principal point and every 2D observation are shifted by +0.5 here, so the model is exact in COLMAP's convention
  (upstream's demo skips the shift, a half-pixel error).
* ``images``: ``cam_from_world`` = the extrinsics (quaternion WXYZ, translation).
* ``points3D``: the selected points, ids from 1, each observed once, in the frame it was predicted from, at the
  pixel it came from (``pixels_xy``) or, without it, where the camera projects it; error -1 (not computed, COLMAP's
  default). This is what upstream's ``batch_np_matrix_to_pycolmap_wo_track`` writes: an initialisation for
  Gaussian splatting / NeRF pipelines, not a bundle-adjusted model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from vggt_jax.geometry.cameras import intrinsics_to_corner_convention, project_points
from vggt_jax.geometry.rotation import mat_to_quat, quat_xyzw_to_wxyz
from vggt_jax.inference.exports._common import ExportError, PointSelection, check_array, check_names, commit_files

PINHOLE_MODEL_ID = 1
_POINT2D = np.dtype([("x", "<f8"), ("y", "<f8"), ("point3D_id", "<u8")])
_POINT3D = np.dtype(
    [
        ("id", "<u8"),
        ("xyz", "<f8", 3),
        ("rgb", "u1", 3),
        ("error", "<f8"),
        ("track_length", "<u8"),
        ("image_id", "<u4"),
        ("point2D_idx", "<u4"),
    ]
)


def _observations(points: PointSelection, extrinsics, intrinsics, pixels_xy) -> np.ndarray:
    """``[P, 2]`` observation of each point in its own frame, COLMAP pixel convention."""
    if pixels_xy is not None:
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
    fmt: Literal["bin", "txt"] = "bin",
) -> dict[str, bytes]:
    """The three files of the model as ``{name: bytes}``; arguments as ``write_colmap``."""
    count = len(check_array("extrinsics", extrinsics, (None, 3, 4)))
    extrinsics = extrinsics.astype(np.float64)
    intrinsics = check_array("intrinsics", intrinsics, (count, 3, 3)).astype(np.float64)
    sizes = check_array("image_sizes_hw", image_sizes_hw, (count, 2)).astype(np.int64)
    names = check_names(image_names, count)
    if pixels_xy is not None:
        check_array("pixels_xy", pixels_xy, (count, None, None, 2))
    if fmt == "txt" and any(any(c.isspace() for c in n) for n in names):
        raise ExportError("COLMAP's text format splits on whitespace: rename images with spaces or use fmt='bin'")
    if points.frame.max(initial=0) >= count:
        raise ExportError(f"points refer to frame {points.frame.max()} but there are {count} cameras")

    params = intrinsics_to_corner_convention(intrinsics)[:, [0, 1, 0, 1], [0, 1, 2, 2]]  # fx, fy, cx, cy
    qvec = quat_xyzw_to_wxyz(mat_to_quat(extrinsics[:, :3, :3]))
    tvec = extrinsics[:, :3, 3]
    xy = _observations(points, extrinsics, intrinsics, pixels_xy)
    # Observation index of each point inside its image: points are grouped by frame (select_points' order).
    order = np.argsort(points.frame, kind="stable")
    starts = np.searchsorted(points.frame[order], np.arange(count))
    point2d_idx = np.empty(len(points), np.int64)
    point2d_idx[order] = np.arange(len(points)) - starts[points.frame[order]]
    point_ids = np.arange(1, len(points) + 1, dtype=np.uint64)
    per_image = [order[starts[k] : starts[k + 1] if k + 1 < count else len(points)] for k in range(count)]
    write = _binary if fmt == "bin" else _text
    return write(params, sizes, qvec, tvec, names, points, xy, point_ids, point2d_idx, per_image)


def _binary(params, sizes, qvec, tvec, names, points, xy, point_ids, point2d_idx, per_image) -> dict[str, bytes]:
    count = len(names)
    cameras = [np.uint64(count).tobytes()]
    images = [np.uint64(count).tobytes()]
    for k in range(count):
        height, width = sizes[k]
        cameras += [
            np.array([k + 1], "<u4").tobytes(),
            np.array([PINHOLE_MODEL_ID], "<i4").tobytes(),
            np.array([width, height], "<u8").tobytes(),
            params[k].astype("<f8").tobytes(),
        ]
        observed = np.empty(len(per_image[k]), _POINT2D)
        observed["x"], observed["y"] = xy[per_image[k]].T
        observed["point3D_id"] = point_ids[per_image[k]]
        images += [
            np.array([k + 1], "<u4").tobytes(),
            np.concatenate([qvec[k], tvec[k]]).astype("<f8").tobytes(),
            np.array([k + 1], "<u4").tobytes(),
            names[k].encode("utf-8") + b"\0",
            np.array([len(observed)], "<u8").tobytes(),
            observed.tobytes(),
        ]
    table = np.empty(len(points), _POINT3D)
    table["id"], table["xyz"], table["rgb"] = point_ids, points.xyz, points.rgb
    table["error"], table["track_length"] = -1.0, 1
    table["image_id"], table["point2D_idx"] = points.frame + 1, point2d_idx
    return {
        "cameras.bin": b"".join(cameras),
        "images.bin": b"".join(images),
        "points3D.bin": np.uint64(len(points)).tobytes() + table.tobytes(),
    }


def _text(params, sizes, qvec, tvec, names, points, xy, point_ids, point2d_idx, per_image) -> dict[str, bytes]:
    count = len(names)
    num = lambda v: repr(float(v))  # shortest round-trip form: the text model is as exact as the binary one
    cameras = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {count}",
    ]
    images = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {count}, mean observations per image: {len(points) / count}",
    ]
    for k in range(count):
        height, width = sizes[k]
        cameras.append(f"{k + 1} PINHOLE {width} {height} " + " ".join(num(p) for p in params[k]))
        pose = " ".join(num(v) for v in np.concatenate([qvec[k], tvec[k]]))
        images.append(f"{k + 1} {pose} {k + 1} {names[k]}")
        images.append(
            " ".join(
                f"{num(x)} {num(y)} {i}" for (x, y), i in zip(xy[per_image[k]], point_ids[per_image[k]], strict=True)
            )
        )
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(points)}, mean track length: 1",
    ]
    for i, (x, y, z), (r, g, b), f, j in zip(point_ids, points.xyz, points.rgb, points.frame, point2d_idx, strict=True):
        lines.append(f"{i} {num(x)} {num(y)} {num(z)} {r} {g} {b} -1 {f + 1} {j}")
    encode = lambda rows: ("\n".join(rows) + "\n").encode("utf-8")
    return {"cameras.txt": encode(cameras), "images.txt": encode(images), "points3D.txt": encode(lines)}


def write_colmap(
    directory: str | os.PathLike,
    points: PointSelection,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    image_names: list[str],
    *,
    pixels_xy: np.ndarray | None = None,
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
      fmt: "bin" or "txt".
    """
    files = colmap_model_files(
        points, extrinsics, intrinsics, image_sizes_hw, image_names, pixels_xy=pixels_xy, fmt=fmt
    )
    return commit_files(directory, files)
