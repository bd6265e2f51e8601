"""A small synthetic scene for the export tests: known cameras and depth, images of three different sizes."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from PIL import Image

from vggt_jax.geometry import depth_to_world_points, quat_to_mat
from vggt_jax.inference.preprocess import ImageMeta, load_and_preprocess_images, original_pixel_coords


@dataclasses.dataclass
class Scene:
    images: np.ndarray  # [S, 3, H, W] model input
    metas: list[ImageMeta]
    names: list[str]
    extrinsics: np.ndarray  # [S, 3, 4]
    intrinsics: np.ndarray  # [S, 3, 3] model-input pixels
    intrinsics_original: np.ndarray  # [S, 3, 3] original pixels
    original_hw: np.ndarray  # [S, 2]
    depth: np.ndarray  # [S, H, W]
    conf: np.ndarray  # [S, H, W]
    world_points: np.ndarray  # [S, H, W, 3]
    pixels_xy: np.ndarray  # [S, H, W, 2] original position of every model-input pixel


@pytest.fixture(scope="session")
def export_scene(tmp_path_factory) -> Scene:
    """Three photos (landscape, portrait, wide) through the real preprocessing ('pad', 56 px: padding and a
    different scale on each axis), three cameras looking at a bumpy surface, depth unprojected exactly."""
    folder = tmp_path_factory.mktemp("scene_images")
    rng = np.random.default_rng(0)
    paths = []
    for k, (w, h) in enumerate([(80, 60), (45, 70), (120, 40)]):
        paths.append(folder / f"view_{k}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images, metas = load_and_preprocess_images(paths, "pad", target_size=56)
    count, _, height, width = images.shape
    angles = [(0.0, 0.0, 0.0), (0.1, -0.3, 0.05), (-0.15, 0.35, -0.1)]
    extrinsics = np.zeros((count, 3, 4))
    for k, angle in enumerate(angles):
        half = np.array(angle) / 2
        rotation = quat_to_mat(np.array([*np.sin(half), 1.0]))
        centre = np.array([0.8 * k - 0.8, 0.1 * k, -0.2 * k])
        extrinsics[k] = np.concatenate([rotation, (-rotation @ centre)[:, None]], axis=1)
    intrinsics = np.tile(np.array([[50.0, 0, width / 2], [0, 52.0, height / 2], [0, 0, 1]]), (count, 1, 1))
    yy, xx = np.mgrid[:height, :width] / 56.0
    depth = np.stack([2.0 + 0.3 * np.sin(4 * xx + k) * np.cos(3 * yy) + 0.2 * k for k in range(count)])
    conf = 1.0 + rng.exponential(1.0, depth.shape)
    return Scene(
        images=images,
        metas=metas,
        names=[m.name for m in metas],
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        intrinsics_original=np.stack([m.intrinsics_to_original(k) for m, k in zip(metas, intrinsics, strict=True)]),
        original_hw=np.array([m.original_hw for m in metas]),
        depth=depth,
        conf=conf,
        world_points=depth_to_world_points(depth, extrinsics, intrinsics),
        pixels_xy=original_pixel_coords(metas),
    )
