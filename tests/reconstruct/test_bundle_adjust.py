"""Bundle adjustment on model-free cases (issue #7, case 5a): exact synthetic ground truth, perturbed cameras,
noisy depth and tracks with planted gross outliers, fixed seeds."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pycolmap
import pytest

from vggt_jax.evaluate.metrics import evaluate, focal_errors
from vggt_jax.evaluate.model_free import model_free_case
from vggt_jax.geometry import colmap_io
from vggt_jax.reconstruct import BAOptions, bundle_adjust

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def cases():
    return {seed: model_free_case(seed) for seed in SEEDS}


def _adjust(case, **kw):
    return bundle_adjust(
        case.tracks, case.init["extrinsics"], case.init["intrinsics"], case.sizes, case.names, BAOptions(**kw)
    )


@pytest.mark.parametrize("shared", [False, True], ids=["camera_per_frame", "shared_camera"])
def test_ba_recovers_the_cameras(cases, shared):
    """The 5a bounds: rotation 0.2 deg, translation direction 0.5 deg (medians over frame pairs), focal 0.5%,
    reprojection RMSE 1 px, every planted outlier rejected. Seeds 0-9 are measured in
    docs/reconstruction_accuracy.md."""
    for seed, case in cases.items():
        result = _adjust(case, shared_camera=shared)
        before = evaluate(dict(extrinsics=case.init["extrinsics"], intrinsics=case.init["intrinsics"]), case.gt)
        after = evaluate(dict(extrinsics=result.extrinsics, intrinsics=result.intrinsics), case.gt)
        assert before["rot_err_median"] > 1.5 and before["focal_err_median"] > 0.04  # the perturbation is there
        assert after["rot_err_median"] <= 0.2, (seed, after)
        assert after["trans_err_median"] <= 0.5, (seed, after)
        focal = np.abs(focal_errors(result.intrinsics, case.gt["intrinsics"]))
        # One camera: its focal length; a camera per frame: the median frame's (single frames reach 0.59%, seeds 0-9).
        assert (focal.max() if shared else np.median(focal)) <= 0.005, (seed, focal)
        assert result.report["reproj_rmse_after"] <= 1.0 < result.report["reproj_rmse_before"]
        assert not (case.outlier[:, result.point_index] & result.observed).any(), seed
        assert result.report["observations"] > 0.8 * (case.tracks.vis.sum() - case.outlier.sum())
        # Frame 0 stays the reference frame.
        np.testing.assert_allclose(result.extrinsics[0], case.init["extrinsics"][0], atol=1e-12)


def test_model_reads_back_with_multiview_tracks(tmp_path, cases):
    case = cases[0]
    result = _adjust(case)
    for name, content in colmap_io.model_files(result.reconstruction, "bin").items():
        (tmp_path / name).write_bytes(content)
    rec = pycolmap.Reconstruction(str(tmp_path))
    assert rec.num_reg_images() == len(case.names) and rec.num_points3D() == len(result.xyz)
    lengths = np.array([p.track.length() for p in rec.points3D.values()])
    assert lengths.min() >= 3 and lengths.mean() > 3
    assert {im.name for im in rec.images.values()} == set(case.names)
    worst = 0.0
    for point in rec.points3D.values():
        for element in point.track.elements:
            image = rec.images[element.image_id]
            observed = image.points2D[element.point2D_idx].xy
            worst = max(worst, float(np.linalg.norm(image.project_point(point.xyz) - observed)))
    assert worst <= BAOptions().max_reproj_error
    point = rec.points3D[int(next(iter(rec.points3D)))]
    assert tuple(point.color) in {tuple(c) for c in result.rgb}  # the colours of the query pixels
    assert rec.compute_mean_reprojection_error() == pytest.approx(
        np.mean([p.error for p in rec.points3D.values()]), rel=0.5
    )
    np.testing.assert_allclose(colmap_io.image_extrinsic(rec.images[3]), result.extrinsics[2], atol=1e-9)


def test_frame_without_inliers_warns_and_still_gives_a_model(cases, caplog):
    case = cases[1]
    tracks = case.tracks.select(case.tracks.query_frame != 5)  # no track starts in frame 5, none is seen there
    tracks.vis[5] = 0.0
    with caplog.at_level(logging.WARNING, logger="vggt_jax.reconstruct.bundle"):
        result = bundle_adjust(tracks, case.init["extrinsics"], case.init["intrinsics"], case.sizes, case.names)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "frames [5]" in warnings[0] and "kept out of the adjustment" in warnings[0]
    assert result.report["held_out_frames"] == [5] and result.report["inliers_per_frame"][5] == 0
    np.testing.assert_allclose(result.extrinsics[5], case.init["extrinsics"][5], atol=1e-12)  # via its quaternion
    assert result.reconstruction.num_reg_images() == len(case.names)
    after = evaluate(
        dict(extrinsics=np.delete(result.extrinsics, 5, 0)), dict(extrinsics=np.delete(case.gt["extrinsics"], 5, 0))
    )
    assert after["rot_err_median"] <= 0.3


def test_no_inliers_anywhere_keeps_the_feed_forward_cameras(cases, caplog):
    case = cases[2]
    tracks = dataclasses.replace(case.tracks, vis=np.zeros_like(case.tracks.vis), xy=case.tracks.xy + 500.0)
    with caplog.at_level(logging.WARNING, logger="vggt_jax.reconstruct.bundle"):
        result = bundle_adjust(tracks, case.init["extrinsics"], case.init["intrinsics"], case.sizes, case.names)
    assert caplog.text.count("bundle adjustment: not run") == 1
    assert result.reconstruction.num_reg_images() == len(case.names) and len(result.xyz) == 0
    np.testing.assert_allclose(result.extrinsics, case.init["extrinsics"], atol=1e-12)


@pytest.mark.parametrize("model", ["PINHOLE", "SIMPLE_RADIAL"])
def test_other_camera_models(cases, model):
    case = cases[0]
    result = _adjust(case, camera_model=model)
    assert {c.model_name for c in result.reconstruction.cameras.values()} == {model}
    assert result.report["reproj_rmse_after"] <= 1.0
    after = evaluate(dict(extrinsics=result.extrinsics), case.gt)
    assert after["rot_err_median"] <= 0.2
    if model == "SIMPLE_RADIAL":  # the scenes have no distortion
        assert np.abs(result.radial).max() < 0.02
        cameras = result.reconstruction.cameras
        np.testing.assert_allclose([cameras[k + 1].params[3] for k in range(len(case.names))], result.radial)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="camera_model"):
        BAOptions(camera_model="OPENCV")
    with pytest.raises(ValueError, match="max_reproj_error"):
        BAOptions(max_reproj_error=40.0, init_max_reproj_error=32.0)
