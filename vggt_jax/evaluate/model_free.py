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

``tracker="features"`` replaces the last with tracks from the rendered frames themselves (``reconstruct.features``:
SIFT, pairs chosen with the perturbed cameras and depth, verified, merged): no ground truth in them, their errors
are the matcher's. ``outlier`` then marks the observations further than ``outlier_min_px`` from where the true
surface point at the track's first pixel projects (wrong matches). ``texture_scale`` gives SIFT more to find,
``supersample`` renders the frames at that factor and box-filters them (a camera's pixel integrates its area;
one ray per pixel aliases the fine texture). ``known_intrinsics``: the true intrinsics, with the depth rescaled to
them as ``infer.py --intrinsics`` does.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import camera_centers, closed_form_inverse_se3, depth_to_world_points, quat_to_mat
from vggt_jax.inference.intrinsics import rescale_depth
from vggt_jax.reconstruct.bundle import Tracks
from vggt_jax.reconstruct.features import DEFAULT_FEATURE_OPTIONS, FeatureOptions, feature_tracks
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
    report: dict | None = None  # the image-feature tracker's (``tracker="features"``)

    def adjust(self, opts=None):
        """``bundle_adjust`` of the tracks from the perturbed cameras (``opts``: ``BAOptions``, default options)."""
        from vggt_jax.reconstruct.bundle import DEFAULT_OPTIONS, bundle_adjust

        init = self.init
        return bundle_adjust(
            self.tracks, init["extrinsics"], init["intrinsics"], self.sizes, self.names, opts or DEFAULT_OPTIONS
        )


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


def _oracle_tracks(scene, views, ext, points_init, noise, rng, query_frames, max_query_points, frame_rule):
    """The exact projections of corner-like query pixels, with noise and planted outliers (module docstring)."""
    height, width = views["images"].shape[1:3]
    valid = views["valid"]
    frames = select_query_frames(ext, query_frames, frame_rule, points_init[::8, ::8][valid[::8, ::8]])
    parts, outliers = [], []
    images = views["images"]
    for q in frames:
        queries = select_query_points(images[q], max_query_points, mask=valid[q])
        col, row = queries[:, 0].astype(int), queries[:, 1].astype(int)
        world = views["world_points"][q, row, col].astype(np.float64)
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
    return Tracks.concatenate(parts), np.concatenate(outliers, 1)


def _true_points(views: dict, tracks: Tracks) -> np.ndarray:
    """``[P, 3]`` the true surface point at each track's query pixel (nearest pixel)."""
    height, width = views["images"].shape[1:3]
    anchor = tracks.xy[tracks.query_frame, np.arange(len(tracks.query_frame))]
    col = np.clip(np.round(anchor[:, 0]).astype(int), 0, width - 1)
    row = np.clip(np.round(anchor[:, 1]).astype(int), 0, height - 1)
    return views["world_points"][tracks.query_frame, row, col].astype(np.float64)


def supersampled_images(seed, num_frames, height, width, trajectory, texture_scale, factor: int) -> np.ndarray:
    """``[S, H, W, 3]`` frames of the same scene rendered at ``factor`` times the size and box-filtered down (each
    pixel the mean over its area, as a camera's pixel integrates light). The scene draws its focal length and
    principal point as fractions of the size, so the large scene's camera is the small one's, scaled about the
    corner: its ``factor`` x ``factor`` pixel blocks are exactly the small scene's pixels."""
    large = SyntheticScene(
        seed, num_frames, height * factor, width * factor, trajectory=trajectory, texture_scale=texture_scale
    )
    images = large.render()["images"]
    return images.reshape(num_frames, height, factor, width, factor, 3).mean((2, 4))


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
    tracker: str = "oracle",
    texture_scale: float = 1.0,
    known_intrinsics: bool = False,
    feature_options: FeatureOptions = DEFAULT_FEATURE_OPTIONS,
    supersample: int = 1,
    extractor=None,
) -> ModelFreeCase:
    """One case (module docstring); everything is a function of ``seed``."""
    scene = SyntheticScene(seed, num_frames, height, width, trajectory=trajectory, texture_scale=texture_scale)
    views = scene.render()
    if supersample > 1:
        views["images"] = supersampled_images(seed, num_frames, height, width, trajectory, texture_scale, supersample)
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
    if known_intrinsics:  # as infer.py --intrinsics: the depth rescaled to the known field of view
        depth = rescale_depth(depth, intr, gt_int)
        intr = gt_int.copy()
    points_init = depth_to_world_points(depth, ext, intr)
    points_init[~views["valid"]] = np.nan  # no depth there (sky)

    images = views["images"]
    if tracker == "features":
        found = feature_tracks(
            images.transpose(0, 3, 1, 2),
            points_init,
            views["valid"],
            ext,
            intr,
            opts=feature_options,
            extractor=extractor,
        )
        tracks, report = found.to_tracks(points_init, images.transpose(0, 3, 1, 2)), found.report
        # A wrong match: an observation further than outlier_min_px from where its anchor's true point projects.
        truth, visible = scene.tracks(_true_points(views, tracks))
        outlier = (tracks.vis > 0) & (~visible | (np.linalg.norm(tracks.xy - truth, axis=-1) > noise.outlier_min_px))
    elif tracker == "oracle":
        report = None
        tracks, outlier = _oracle_tracks(
            scene, views, ext, points_init, noise, rng, query_frames, max_query_points, frame_rule
        )
    else:
        raise ValueError(f"tracker must be 'oracle' or 'features', got {tracker!r}")
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
        tracks,
        outlier,
        names,
        np.tile((height, width), (num_frames, 1)),
        report,
    )
