"""Model-free reconstruction cases: exact ground truth from ``vggt_jax.data.synthetic``, then known noise.

What a feed-forward model would hand to bundle adjustment, with errors of a chosen size:

* cameras in camera 0's frame (as VGGT predicts them): frame 0 exact, every other frame rotated by ``rot_deg``
  about a random axis and moved by ``trans_frac`` of the mean camera distance from frame 0 in a random direction;
  every focal length scaled by ``1 + focal_frac`` with a random sign;
* depth with multiplicative Gaussian noise of ``depth_noise``, unprojected with those cameras at the query pixels
  (corner-like pixels of the query frames, ``select_query_points``) to give the initial points;
* tracks: the exact projections of the query pixels' surface points into every frame where they are visible
  (ray-cast occlusion test), plus Gaussian noise of ``pixel_noise`` px; ``outlier_frac`` of the observations outside
  the query frames are replaced by a position drawn uniformly over the image at least ``outlier_min_px`` from the
  true one (gross outliers, as a tracker that lost the point; marked in ``outlier``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import camera_centers, closed_form_inverse_se3, depth_to_world_points, quat_to_mat
from vggt_jax.reconstruct.bundle import Tracks
from vggt_jax.reconstruct.queries import select_query_frames, select_query_points


@dataclasses.dataclass(frozen=True)
class Noise:
    rot_deg: float = 2.0
    trans_frac: float = 0.05
    focal_frac: float = 0.05
    depth_noise: float = 0.02
    pixel_noise: float = 0.5
    outlier_frac: float = 0.1
    outlier_min_px: float = 30.0


DEFAULT_NOISE = Noise()


@dataclasses.dataclass
class ModelFreeCase:
    """``gt``: ``extrinsics, intrinsics, depth, valid, images`` in camera 0's frame; ``init``: the perturbed
    ``extrinsics, intrinsics, depth``; ``tracks`` (``Tracks``) and ``outlier [S, P]`` bool; ``names``, ``sizes``."""

    gt: dict
    init: dict
    tracks: Tracks
    outlier: np.ndarray
    names: list[str]
    sizes: np.ndarray


def _rotation(axis_angle: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(axis_angle)
    axis = axis_angle / max(angle, 1e-12)
    return quat_to_mat(np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]]))


def _far_positions(true_xy: np.ndarray, hw: tuple[int, int], min_px: float, rng: np.random.Generator) -> np.ndarray:
    """``[N, 2]`` uniform positions inside an image of size ``hw`` at least ``min_px`` from ``true_xy [N, 2]``."""
    out = np.empty_like(true_xy)
    todo = np.arange(len(true_xy))
    while len(todo):
        draw = rng.uniform([-0.5, -0.5], [hw[1] - 0.5, hw[0] - 0.5], (len(todo), 2))
        ok = np.linalg.norm(draw - true_xy[todo], axis=-1) >= min_px
        out[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return out


def to_camera0_frame(extrinsics: np.ndarray) -> np.ndarray:
    """Cameras ``[S, 3, 4]`` re-expressed in the frame of camera 0 (VGGT's output frame): ``E_i E_0^-1``."""
    bottom = np.tile([[[0, 0, 0, 1.0]]], (len(extrinsics), 1, 1))
    return (np.concatenate([extrinsics, bottom], 1) @ closed_form_inverse_se3(extrinsics[0]))[:, :3]


def model_free_case(
    seed: int,
    noise: Noise = DEFAULT_NOISE,
    *,
    num_frames: int = 8,
    height: int = 120,
    width: int = 160,
    trajectory: str = "orbit",
    query_frames: int = 4,
    max_query_points: int = 1024,
    frame_rule: str = "pose",
) -> ModelFreeCase:
    """One case (module docstring); everything is a function of ``seed``."""
    scene = SyntheticScene(seed, num_frames, height, width, trajectory=trajectory)
    views = scene.render()
    rng = np.random.default_rng(np.random.SeedSequence([0x5A, seed]))
    gt_ext = to_camera0_frame(views["extrinsics"])
    gt_int = views["intrinsics"]
    extent = np.mean(np.linalg.norm(camera_centers(gt_ext)[1:], axis=-1))
    ext = gt_ext.copy()
    for i in range(1, num_frames):
        axis = rng.normal(size=3)
        delta = _rotation(np.radians(noise.rot_deg) * axis / np.linalg.norm(axis))
        direction = rng.normal(size=3)
        centre = camera_centers(gt_ext[i]) + noise.trans_frac * extent * direction / np.linalg.norm(direction)
        rot = delta @ gt_ext[i, :, :3]
        ext[i] = np.concatenate([rot, (-rot @ centre)[:, None]], 1)
    intr = gt_int.copy()
    intr[:, :2, :2] *= (1 + noise.focal_frac * rng.choice([-1.0, 1.0], num_frames))[:, None, None]
    depth = views["depths"] * (1 + noise.depth_noise * rng.normal(size=views["depths"].shape))
    points_init = depth_to_world_points(depth, ext, intr)

    frames = select_query_frames(ext, query_frames, frame_rule, points_init[::8, ::8][views["valid"][::8, ::8]])
    parts, outliers = [], []
    images = views["images"]
    gt_world = views["world_points"]
    for q in frames:
        queries = select_query_points(images[q], max_query_points, mask=views["valid"][q])
        col, row = queries[:, 0].astype(int), queries[:, 1].astype(int)
        world = gt_world[q, row, col].astype(np.float64)
        track, visible = scene.tracks(world)
        visible[q] = True
        track[q] = queries
        xy = track + noise.pixel_noise * rng.normal(size=track.shape)
        xy[q] = queries
        outlier = visible & (rng.random(visible.shape) < noise.outlier_frac)
        outlier[q] = False
        xy[outlier] = _far_positions(track[outlier], (height, width), noise.outlier_min_px, rng)
        rgb = np.round(images[q, row, col] * 255).astype(np.uint8)
        parts.append(Tracks(xy, visible.astype(np.float64), np.full(len(queries), q), points_init[q, row, col], rgb))
        outliers.append(outlier)
    gt = dict(
        extrinsics=gt_ext,
        intrinsics=gt_int,
        depth=views["depths"],
        valid=views["valid"],
        images=images,
        points=depth_to_world_points(views["depths"].astype(np.float64), gt_ext, gt_int)[views["valid"]],
    )
    init = dict(extrinsics=ext, intrinsics=intr, depth=depth)
    names = [f"frame_{i:02d}.png" for i in range(num_frames)]
    return ModelFreeCase(
        gt,
        init,
        Tracks.concatenate(parts),
        np.concatenate(outliers, 1),
        names,
        np.tile((height, width), (num_frames, 1)),
    )
