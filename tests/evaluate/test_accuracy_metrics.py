"""The harness's metrics on hand-made cases with known answers; trajectories read by evo with the same ATE."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vggt_jax.evaluate import metrics
from vggt_jax.geometry import (
    apply_similarity,
    camera_centers,
    project_points,
    quat_to_mat,
    transform_extrinsics,
    umeyama,
)
from vggt_jax.inference.exports import kitti_text, read_tum, tum_text, write_trajectories


def _random_cameras(rng, count):
    rotation = quat_to_mat(rng.normal(size=(count, 4)))
    return np.concatenate([rotation, rng.normal(size=(count, 3, 1))], axis=-1)


def _similarity(rng):
    return 2.7, quat_to_mat(rng.normal(size=4)), rng.normal(size=3)


def test_umeyama_recovers_a_planted_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    scale, rotation, translation = _similarity(rng)
    dst = apply_similarity(src, scale, rotation, translation)
    for weights in (None, rng.uniform(0.1, 2.0, 50)):
        s, r, t = umeyama(src, dst, weights)
        assert abs(s - scale) < 1e-9 and np.abs(r - rotation).max() < 1e-9 and np.abs(t - translation).max() < 1e-9
    s, r, _ = umeyama(src, dst / scale, with_scale=False)
    assert s == 1.0 and np.abs(r - rotation).max() < 1e-9
    with pytest.raises(ValueError, match="N, 3"):
        umeyama(src, dst[:, :2])


def test_transformed_cameras_project_the_same():
    rng = np.random.default_rng(1)
    cameras = _random_cameras(rng, 4)
    points = rng.normal(size=(4, 10, 3)) + camera_centers(cameras)[:, None] + 3 * cameras[:, None, 2, :3]
    sim = _similarity(rng)
    moved = transform_extrinsics(cameras, *sim)
    k = np.tile(np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]]), (4, 1, 1))
    xy, z = project_points(points, cameras, k)
    xy2, z2 = project_points(apply_similarity(points, *sim), moved, k)
    np.testing.assert_allclose(xy2, xy, atol=1e-9)
    np.testing.assert_allclose(z2, sim[0] * z, rtol=1e-12)


def test_identical_poses_score_perfectly_in_any_frame_and_scale():
    rng = np.random.default_rng(2)
    gt = _random_cameras(rng, 6)
    pred = transform_extrinsics(gt, *_similarity(rng))
    out = metrics.camera_metrics(pred, gt)
    assert out["auc30"] == 1.0 and out["rra30"] == 1.0 and out["rta30"] == 1.0 and out["pairs"] == 15
    assert out["rot_err_median"] < 1e-6 and out["trans_err_median"] < 1e-5
    ate, (s, _, _) = metrics.ate(pred, gt)
    assert ate < 1e-9 and abs(s - 1 / 2.7) < 1e-9


def test_a_known_rotation_error_gives_the_expected_rra():
    rng = np.random.default_rng(3)
    gt = _random_cameras(rng, 5)
    pred = gt.copy()
    c, s = np.cos(np.radians(40)), np.sin(np.radians(40))
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    pred[2] = rz @ gt[2]  # camera 2 rotated 40 degrees about its optical axis (centre moves too: its t rotates)
    rot, _, _ = metrics.pair_errors(pred, gt)
    i, j = np.triu_indices(5, 1)
    with_2 = (i == 2) | (j == 2)
    np.testing.assert_allclose(rot[with_2], 40.0, atol=1e-9)
    np.testing.assert_allclose(rot[~with_2], 0.0, atol=1e-5)  # arccos near 1: sqrt(eps) ~ 1e-6 deg
    out = metrics.camera_metrics(pred, gt)
    assert out["rra30"] == pytest.approx(6 / 10)  # 4 of the 10 pairs involve camera 2
    assert metrics.auc(np.array([0.0, 14.5, 45.0, 45.0])) == pytest.approx((30 + 16) / 30 / 4)
    assert metrics.auc(np.zeros(10)) == 1.0 and metrics.auc(np.full(10, 45.0)) == 0.0


def test_ate_of_a_planted_offset():
    rng = np.random.default_rng(4)
    gt = _random_cameras(rng, 8)
    pred = gt.copy()
    # Move camera centres by +-0.1 along x alternately: no similarity absorbs it, the ATE is about 0.1.
    offsets = np.zeros((8, 3))
    offsets[:, 0] = 0.1 * (-1) ** np.arange(8)
    pred[:, :, 3] -= np.einsum("sij,sj->si", gt[:, :, :3], offsets)
    ate, _ = metrics.ate(pred, gt)
    assert 0.08 < ate <= 0.1


def test_depth_and_point_cloud_metrics():
    rng = np.random.default_rng(5)
    gt = rng.uniform(1, 5, (2, 6, 7))
    valid = rng.random(gt.shape) > 0.2
    out = metrics.depth_metrics(gt * 0.3, np.where(valid, gt, 0))
    assert (
        out["depth_abs_rel"] < 1e-12 and out["depth_delta1.25"] == 1.0 and out["depth_scale"] == pytest.approx(1 / 0.3)
    )
    noisy = gt * np.where(rng.random(gt.shape) < 0.3, 1.5, 1.0)  # 30% of the pixels 50% too far: the median scale is 1
    assert metrics.depth_metrics(noisy, gt)["depth_delta1.25"] == np.mean(noisy == gt)
    cloud = rng.normal(size=(2000, 3))
    same = metrics.pointcloud_metrics(cloud, cloud)
    assert same["chamfer"] == 0.0
    shifted = metrics.pointcloud_metrics(cloud + [0.01, 0, 0], cloud)
    assert 0.0 < shifted["accuracy"] <= 0.01 and 0.0 < shifted["completeness"] <= 0.01


def test_tum_and_kitti_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    cameras = _random_cameras(rng, 5)
    write_trajectories(tmp_path, cameras, timestamps=np.arange(5) * 0.5)
    stamps, back = read_tum(tmp_path / "trajectory_tum.txt")
    np.testing.assert_allclose(stamps, np.arange(5) * 0.5)
    np.testing.assert_allclose(back, cameras, atol=1e-12)
    rows = np.loadtxt(tmp_path / "trajectory_kitti.txt").reshape(5, 3, 4)
    np.testing.assert_allclose(rows[:, :, 3], camera_centers(cameras), atol=1e-12)  # camera-to-world
    assert tum_text(cameras).splitlines()[0].split()[0] == "0" and len(kitti_text(cameras).splitlines()) == 5


def _evo_ape_rmse(fmt: str, ref: Path, est: Path) -> float:
    """The RMSE ``evo_ape`` prints (the script pip installs beside this Python)."""
    evo_ape = Path(sys.executable).parent / "evo_ape"
    result = subprocess.run([str(evo_ape), fmt, str(ref), str(est), "-as"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    return float(re.search(r"rmse\s+([0-9.eE+-]+)", result.stdout).group(1))


def test_evo_reads_our_trajectories_and_agrees_on_ate(tmp_path):
    """``evo_ape tum gt.txt est.txt -as`` (and kitti) on our exports gives our ATE."""
    rng = np.random.default_rng(7)
    gt = _random_cameras(rng, 12)
    noisy = gt.copy()
    noisy[:, :, 3] += 0.05 * rng.normal(size=(12, 3))
    est = transform_extrinsics(noisy, 0.4, quat_to_mat(rng.normal(size=4)), rng.normal(size=3))
    ours, _ = metrics.ate(est, gt)
    for name, cams in (("gt", gt), ("est", est)):
        write_trajectories(tmp_path / name, cams)
    for fmt, file in (("tum", "trajectory_tum.txt"), ("kitti", "trajectory_kitti.txt")):
        theirs = _evo_ape_rmse(fmt, tmp_path / "gt" / file, tmp_path / "est" / file)
        assert abs(theirs - ours) < 1e-6, (fmt, theirs, ours)
