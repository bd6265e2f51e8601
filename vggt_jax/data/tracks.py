"""Ground-truth point tracks from depth: query pixels in frame 0, projected into every frame, visible by depth test.

This follows the official ``build_tracks_by_depth`` (training/data/track_util.py) for positive tracks: a query's
world point is projected into each frame; it is visible there when its projection lies at least ``boundary`` px inside
the image and its depth agrees within ``rel_tol`` (relative, both ways) with the depth map at one of the four pixels
around the projection (depth is resampled by nearest neighbour, so any of the four may hold the surface). Tracks not
visible in frame 0 or visible in fewer than two frames are dropped; the longest-lived half is preferred when there
are enough. The 5% tolerance never rejects a visible point, but passes some hidden ones: points on the far side of
an object near its silhouette, whose depth is within 5% of the near side's (2-6% of the tracks of the synthetic test
scenes). Unlike upstream, no negative (random, invisible) tracks are mixed in; when fewer than ``num_tracks`` good
tracks exist they are drawn with repetition.
"""

from __future__ import annotations

import numpy as np

from vggt_jax.data import augment
from vggt_jax.geometry import project_points


def build_tracks(
    world_points: np.ndarray,
    depths: np.ndarray,
    point_masks: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    num_tracks: int,
    rng: np.random.Generator,
    boundary: int = 4,
    rel_tol: float = 0.05,
    max_candidates: int = 8192,
    distortions: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sample ``num_tracks`` tracks of frame-0 pixels.

    Args:
      world_points: ``[S, H, W, 3]``; depths ``[S, H, W]``; point_masks ``[S, H, W]`` bool; extrinsics ``[S, 3, 4]``;
        intrinsics ``[S, 3, 3]``: one sample's ground truth (before normalisation or after; pixels do not change).
      max_candidates: query pixels drawn at random before the depth test (all valid pixels would cost S x H x W
        projections for a result that keeps ``num_tracks`` of them).
      distortions: ``[S, 2]`` for frames seen through ``augment.radial_distort``: points are projected through it.
    Returns:
      ``tracks [S, N, 2]`` float32 (x, y) pixel positions (the projection even where not visible, 0 if behind the
      camera), ``visible [S, N]`` bool, and ``ok``: False when frame 0 had no trackable pixel (then all not visible).
    """
    num_frames, height, width = depths.shape
    tracks = np.zeros((num_frames, num_tracks, 2), np.float32)
    visible = np.zeros((num_frames, num_tracks), bool)
    if num_tracks == 0:
        return tracks, visible, True
    interior = np.zeros((height, width), bool)
    interior[boundary : height - boundary, boundary : width - boundary] = True
    ys, xs = np.nonzero(point_masks[0] & interior)
    if len(ys) == 0:
        return tracks, visible, False
    if len(ys) > max_candidates:
        keep = rng.choice(len(ys), max_candidates, replace=False)
        ys, xs = ys[keep], xs[keep]
    points = world_points[0, ys, xs].astype(np.float64)
    uv = np.zeros((num_frames, len(ys), 2))
    vis = np.zeros((num_frames, len(ys)), bool)
    for s in range(num_frames):
        proj, z = project_points(points, extrinsics[s], intrinsics[s])
        proj = np.where(np.isfinite(proj) & (z[:, None] > 0), proj, 0.0)
        lens_ok = True
        if distortions is not None and np.any(distortions[s]):
            radius = augment.corner_radius(intrinsics[s], height, width)
            proj, lens_ok = augment.distort_pixels(proj, intrinsics[s], distortions[s], radius)
            proj = np.where(lens_ok[:, None], proj, 0.0)
        uv[s] = proj
        corner = np.floor(proj).astype(np.int64)
        inside = (
            lens_ok
            & (z > 0)
            & (corner[:, 0] >= boundary)
            & (corner[:, 0] < width - boundary)
            & (corner[:, 1] >= boundary)
            & (corner[:, 1] < height - boundary)
        )
        corner = np.where(inside[:, None], corner, 0)
        agree = np.zeros(len(ys), bool)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            d = depths[s, np.minimum(corner[:, 1] + dy, height - 1), np.minimum(corner[:, 0] + dx, width - 1)]
            diff = np.abs(z - d)
            agree |= (diff < rel_tol * z) & (diff < rel_tol * d)
        vis[s] = inside & agree
    alive = vis[0] & (vis.sum(0) >= min(2, num_frames))
    candidates = np.nonzero(alive)[0]
    if len(candidates) == 0:
        return tracks, visible, False
    # Prefer long tracks: keep the half seen in most frames when that still leaves enough.
    order = candidates[np.argsort(-vis[:, candidates].sum(0), kind="stable")]
    if len(order) // 2 > num_tracks:
        order = order[: len(order) // 2]
    pick = rng.choice(order, num_tracks, replace=len(order) < num_tracks)
    # Frame 0 holds the query pixels themselves (their projection reproduces them up to round-off).
    uv[0, pick] = np.stack([xs[pick], ys[pick]], -1)
    return uv[:, pick].astype(np.float32), vis[:, pick], True
