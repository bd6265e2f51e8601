"""Synthetic scenes: determinism, depth against the analytic geometry, multi-view consistency, exact tracks."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_jax.data.synthetic import TRAJECTORIES, SyntheticScene, SyntheticSource
from vggt_jax.geometry import (
    camera_centers,
    depth_to_world_points,
    pixel_grid,
    pixel_rays,
    project_points,
    world_to_cam_points,
)


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(seed=3, num_frames=6, height=60, width=80, trajectory="orbit")


@pytest.fixture(scope="module")
def views(scene):
    return scene.render()


def test_deterministic_from_seed(views):
    again = SyntheticScene(seed=3, num_frames=6, height=60, width=80, trajectory="orbit").render()
    for key in views:
        np.testing.assert_array_equal(views[key], again[key])
    other = SyntheticScene(seed=4, num_frames=6, height=60, width=80, trajectory="orbit").render()
    assert not np.array_equal(views["images"], other["images"])


def test_shapes_and_ranges(views):
    assert views["images"].shape == (6, 60, 80, 3) and views["images"].dtype == np.float32
    assert views["depths"].shape == (6, 60, 80) and views["world_points"].shape == (6, 60, 80, 3)
    assert 0 <= views["images"].min() and views["images"].max() <= 1
    np.testing.assert_array_equal(views["valid"], views["depths"] > 0)
    assert views["valid"].mean() > 0.5


def _on_surface_residual(scene: SyntheticScene, points: np.ndarray, object_id: np.ndarray) -> np.ndarray:
    """Distance-like residual of each point to the analytic surface of its object (0 on the surface)."""
    res = np.full(len(points), np.inf)
    floor = object_id == 0
    res[floor] = np.abs(points[floor, 2])
    for oid, axis, sign in ((1, 0, 1), (2, 0, -1), (3, 1, 1), (4, 1, -1)):
        sel = object_id == oid
        res[sel] = np.abs(points[sel, axis] - sign * scene.room_half[axis])
    nb = len(scene.box_center)
    for k in range(nb):
        sel = object_id == 5 + k
        local = (points[sel] - scene.box_center[k]) @ scene.box_rot[k]
        # On the box surface: inside every slab, and on the boundary of at least one.
        res[sel] = np.maximum(
            np.abs(np.abs(local) / scene.box_half[k] - 1).min(-1), (np.abs(local) - scene.box_half[k]).max(-1)
        )
    for k in range(len(scene.sphere_center)):
        sel = object_id == 5 + nb + k
        res[sel] = np.abs(np.linalg.norm(points[sel] - scene.sphere_center[k], axis=-1) - scene.sphere_radius[k])
    return res


def test_depth_lies_on_the_analytic_geometry(scene, views):
    for s in (0, 3):
        depth, ext, intr = views["depths"][s].astype(np.float64), scene.extrinsics[s], scene.intrinsics[s]
        valid = depth > 0
        points = depth_to_world_points(depth, ext, intr)[valid]
        # Which object each pixel sees, from an independent cast along the same rays.
        rays = pixel_rays(*pixel_grid(60, 80), intr)[valid] @ ext[:, :3]
        _, object_id = scene.cast(camera_centers(ext), rays)
        # Depth is stored as float32: 1e-6 relative at depths up to ~12 units.
        assert _on_surface_residual(scene, points, object_id).max() < 2e-5
        np.testing.assert_allclose(views["world_points"][s][valid], points, atol=2e-5)
        # Sky pixels look above the walls.
        up = pixel_rays(*pixel_grid(60, 80), intr)[~valid] @ ext[:, :3]
        assert (up[:, 2] > 0).all()


def test_depth_is_consistent_across_views(scene, views):
    """A frame-0 point projected into frame 1 lands where frame 1's depth equals the point's depth (unless
    occluded): the rendered depth maps agree with one another through the cameras."""
    points = views["world_points"][0][views["valid"][0]].astype(np.float64)
    uv, z = project_points(points, scene.extrinsics[1], scene.intrinsics[1])
    pix = np.round(uv).astype(int)
    inside = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < 80) & (pix[:, 1] >= 0) & (pix[:, 1] < 60)
    ratio = views["depths"][1][pix[inside, 1], pix[inside, 0]] / z[inside]
    # Frame 1 may see something nearer (an occluder: ratio < 1) but never something farther than a surface point,
    # except where rounding to the nearest pixel crosses a depth edge (measured 1.5% of the points).
    assert inside.sum() > 500
    assert np.mean(np.abs(ratio - 1) < 0.03) > 0.7 and np.mean(ratio > 1.03) < 0.03


def test_projection_round_trip(scene, views):
    points = views["world_points"][2].astype(np.float64)
    uv, _ = project_points(points[views["valid"][2]], scene.extrinsics[2], scene.intrinsics[2])
    np.testing.assert_allclose(uv, np.stack(pixel_grid(60, 80), -1)[views["valid"][2]], atol=1e-3)  # float32 points


def test_tracks_are_projections_with_depth_tested_visibility(scene):
    rng = np.random.default_rng(0)
    uv0 = rng.uniform([0, 0], [79, 59], size=(300, 2))
    points, valid = scene.points_at(0, uv0)
    points, uv0 = points[valid], uv0[valid]
    tracks, vis = scene.tracks(points)
    assert tracks.shape == (6, len(points), 2) and vis.shape == (6, len(points))
    np.testing.assert_allclose(tracks[0], uv0, atol=1e-9)
    assert vis[0].all()
    for s in range(1, 6):
        uv, z = project_points(points, scene.extrinsics[s], scene.intrinsics[s])
        np.testing.assert_allclose(tracks[s][z > 0], uv[z > 0], atol=1e-9)
        # Depth test at the exact track position: visible tracks see their own point; in-image invisible tracks
        # are occluded by something nearer.
        inside = (z > 0) & (uv[:, 0] > -0.5) & (uv[:, 0] < 79.5) & (uv[:, 1] > -0.5) & (uv[:, 1] < 59.5)
        seen, _ = scene.points_at(s, tracks[s][inside])
        seen_z = world_to_cam_points(seen, scene.extrinsics[s])[:, 2]
        occluded = seen_z < z[inside] * (1 - 1e-6)
        np.testing.assert_array_equal(vis[s][inside], ~occluded)
        assert not vis[s][~inside].any()
    assert 0.2 < vis[1:].mean() < 1.0


@pytest.mark.parametrize("trajectory", TRAJECTORIES)
def test_every_trajectory_renders_valid_views(trajectory):
    scene = SyntheticScene(seed=11, num_frames=4, height=30, width=40, trajectory=trajectory)
    views = scene.render()
    assert views["valid"].mean() > 0.5 and views["depths"][views["valid"]].min() > 0.3
    centres = camera_centers(scene.extrinsics)
    baseline = np.linalg.norm(centres - centres[0], axis=-1).max()
    assert baseline < 1e-9 if trajectory == "pan" else baseline > 0.05


def test_turn_rotates_about_a_vertical_axis_behind_the_camera():
    """``turn``: every camera centre lies ``arm`` (0.3-0.6) from one common pivot along its own horizontal viewing
    direction (the camera faces away from the pivot), all at one height."""
    scene = SyntheticScene(seed=3, num_frames=5, height=30, width=40, trajectory="turn")
    centres = camera_centers(scene.extrinsics)
    forward = scene.extrinsics[:, 2, :3]  # camera z axis in world coordinates
    horizontal = forward * [1, 1, 0]
    horizontal /= np.linalg.norm(horizontal, axis=-1, keepdims=True)
    # centre_i = pivot + arm * horizontal_i: linear in (pivot_xy, arm).
    a = np.concatenate([np.tile(np.eye(2), (5, 1)), horizontal[:, :2].reshape(-1, 1)], axis=1)
    solution, *_ = np.linalg.lstsq(a, centres[:, :2].reshape(-1), rcond=None)
    np.testing.assert_allclose(a @ solution, centres[:, :2].reshape(-1), atol=1e-9)
    assert 0.3 <= solution[2] <= 0.6
    np.testing.assert_allclose(centres[:, 2], centres[0, 2], atol=1e-12)
    assert np.linalg.norm(centres - centres[0], axis=-1).max() > 0.1


def test_source_frames_match_the_scene():
    source = SyntheticSource(num_scenes=3, num_frames=4, height=30, width=40, seed=5)
    assert len(source) == 3 and source.num_frames(1) == 4
    frame = source.load_frame(1, 2)
    view = source.scene(1).render([2])
    np.testing.assert_array_equal(frame["image"], np.round(view["images"][0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(frame["depth"], view["depths"][0])
    assert frame["has_depth"] and frame["extrinsic"].shape == (3, 4)
    assert source.scene_name(0) != source.scene_name(1)


def test_source_trajectory_choice():
    """``trajectories`` restricts the camera paths scenes draw; the rooms themselves do not change."""
    every = SyntheticSource(num_scenes=12, num_frames=2, height=30, width=40, seed=5)
    smooth = SyntheticSource(num_scenes=12, num_frames=2, height=30, width=40, seed=5, trajectories=("orbit", "dolly"))
    kinds = [smooth.scene(i).trajectory for i in range(12)]
    assert set(kinds) == {"orbit", "dolly"}
    assert {every.scene(i).trajectory for i in range(12)} == set(TRAJECTORIES)
    np.testing.assert_array_equal(smooth.scene(0).box_center, every.scene(0).box_center)
    with pytest.raises(ValueError, match="non-empty subset"):
        SyntheticSource(num_scenes=1, trajectories=("spiral",))
    with pytest.raises(ValueError, match="non-empty subset"):
        SyntheticScene(seed=0, trajectories=())
