"""``predictions.npz``: every prediction of one run, under the key names upstream's demos save (``np.savez`` of
the model outputs without the batch axis, plus the decoded cameras), and the bookkeeping to map them back.

Keys and shapes (S frames, H x W model input, N tracks); every key is optional, shapes are checked, symbols must
agree across keys. Arrays are numeric or unicode (``np.load`` needs no pickle):

  images                  [S, 3, H, W] float32 in [0, 1]  model input
  pose_enc                [S, 9]        [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w];  pose_enc_list [I, S, 9]
  extrinsic               [S, 3, 4]     camera-from-world, OpenCV axes, world = camera 0
  intrinsic               [S, 3, 3]     model-input pixels, pixel centres at integers
  depth                   [S, H, W] or upstream's [S, H, W, 1]  camera z;  depth_conf [S, H, W]
  world_points            [S, H, W, 3]  point head;  world_points_conf [S, H, W]
  world_points_from_depth [S, H, W, 3]  depth unprojected with extrinsic/intrinsic
  track                   [S, N, 2]     pixel (x, y);  track_list [I, S, N, 2];  vis, conf [S, N]
  query_points            [N, 2]        pixel (x, y) in frame 0
  intrinsic_original      [S, 3, 3]     the cameras in original-image pixels;  track_original [S, N, 2]
  original_hw             [S, 2]        original (H, W);  image_names [S] unicode
  scale_xy, offset_xy     [S, 2]        ImageMeta's warp, original -> model input
Other keys are stored as given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from vggt_jax.inference.exports._common import ExportError, commit_files

Spec = tuple[int | str, ...]
PREDICTION_SHAPES: dict[str, Spec | list[Spec]] = {
    "images": ("S", 3, "H", "W"),
    "pose_enc": ("S", 9),
    "pose_enc_list": ("I", "S", 9),
    "extrinsic": ("S", 3, 4),
    "intrinsic": ("S", 3, 3),
    "depth": [("S", "H", "W"), ("S", "H", "W", 1)],
    "depth_conf": ("S", "H", "W"),
    "world_points": ("S", "H", "W", 3),
    "world_points_conf": ("S", "H", "W"),
    "world_points_from_depth": ("S", "H", "W", 3),
    "track": ("S", "N", 2),
    "track_list": ("I", "S", "N", 2),
    "track_original": ("S", "N", 2),
    "vis": ("S", "N"),
    "conf": ("S", "N"),
    "query_points": ("N", 2),
    "intrinsic_original": ("S", 3, 3),
    "original_hw": ("S", 2),
    "image_names": ("S",),
    "scale_xy": ("S", 2),
    "offset_xy": ("S", 2),
    # infer.py --ba: the bundle-adjusted cameras (the feed-forward ones stay under their own keys).
    "ba_extrinsic": ("S", 3, 4),
    "ba_intrinsic": ("S", 3, 3),
    "ba_intrinsic_original": ("S", 3, 3),
    "ba_radial": ("S",),
}


def check_predictions(predictions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """numpy arrays with the documented shapes and consistent S, H, W, N; raises ExportError listing every problem."""
    arrays, sizes, problems = {}, {}, []
    for key, value in predictions.items():
        array = np.asarray(value)
        if array.dtype == object:
            problems.append(f"{key}: object arrays would need pickle; pass numbers or strings")
            continue
        arrays[key] = array
        specs = PREDICTION_SHAPES.get(key)
        if specs is None:
            continue
        specs = specs if isinstance(specs, list) else [specs]
        spec = next((sp for sp in specs if len(sp) == array.ndim), None)
        want = " or ".join(f"[{', '.join(map(str, sp))}]" for sp in specs)
        if spec is None:
            problems.append(f"{key}: expected {want}, got {list(array.shape)}")
            continue
        for dim, size in zip(spec, array.shape, strict=True):
            if isinstance(dim, int) and dim != size:
                problems.append(f"{key}: expected {want}, got {list(array.shape)}")
                break
            if isinstance(dim, str) and sizes.setdefault(dim, (size, key))[0] != size:
                problems.append(f"{key}: {dim} = {size}, but {sizes[dim][1]} has {dim} = {sizes[dim][0]}")
    if problems:
        raise ExportError("predictions.npz: " + "; ".join(problems))
    return arrays


def write_predictions(
    directory: str | os.PathLike,
    predictions: Mapping[str, np.ndarray],
    filename: str = "predictions.npz",
    compressed: bool = False,
) -> Path:
    """Write ``predictions`` (keys in the module docstring) as one .npz; ``compressed`` trades time for ~2x size."""
    arrays = check_predictions(predictions)
    save = np.savez_compressed if compressed else np.savez
    return commit_files(directory, {filename: lambda f: save(f, **arrays)})[0]


def load_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a predictions.npz back into a dict (no pickle)."""
    with np.load(Path(path), allow_pickle=False) as f:
        return {key: f[key] for key in f.files}
