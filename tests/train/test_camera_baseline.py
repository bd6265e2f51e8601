"""experiments/camera_baseline.py: the rotation error, the image-blind reference and a short run on synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_file_module, micro_train_config

camera_baseline = load_file_module("experiments/camera_baseline.py")


def quat_about_y(deg: float) -> np.ndarray:
    half = np.radians(deg) / 2
    return np.array([0.0, np.sin(half), 0.0, np.cos(half)])


def test_rotation_error_is_the_angle_between_rotations():
    err = camera_baseline.rotation_error_deg
    np.testing.assert_allclose(err(quat_about_y(30.0), quat_about_y(0.0)), 30.0, rtol=1e-5)
    np.testing.assert_allclose(err(3.0 * quat_about_y(50.0), quat_about_y(20.0)), 30.0, rtol=1e-5)  # any norm
    np.testing.assert_allclose(err(-quat_about_y(20.0), quat_about_y(20.0)), 0.0, atol=0.1)  # q and -q agree


def test_mean_rotation_treats_q_and_minus_q_as_one_rotation():
    q10, q30 = quat_about_y(10.0), quat_about_y(30.0)
    quats = np.stack([q10, -q10, q30, -q30])[:, None]  # [N, S - 1 = 1, 4]
    np.testing.assert_allclose(camera_baseline.mean_rotation(quats)[0], quat_about_y(20.0), atol=1e-12)


def two_frame_config(**over):
    frames = {"data.num_frames": (2, 2), "data.frame_buckets": (2,)}
    frames |= {"eval.data.num_frames": (2, 2), "eval.data.frame_buckets": (2,)}
    return micro_train_config(**(frames | over))


@pytest.mark.parametrize("learner", ["cnn", "transformer"])
def test_short_run_reports_the_learner_against_the_mean_rotation(learner):
    logged = []
    rows = camera_baseline.run(two_frame_config(), steps=3, eval_every=2, learner=learner, log=logged.append)
    assert [r["step"] for r in rows] == [0, 2, 3] and len(logged) == 3 and learner in logged[0]
    assert all(np.isfinite(r["error"]) and r["error"] >= 0 for r in rows)
    assert len({r["constant"] for r in rows}) == 1 and 0 < rows[0]["constant"] < 180
    assert rows[0]["error"] != rows[-1]["error"]  # the steps trained the learner


def test_unknown_learner_is_refused():
    with pytest.raises(ValueError, match="unknown learner"):
        camera_baseline.run(two_frame_config(), steps=1, eval_every=1, learner="mlp")


@pytest.mark.parametrize("key, value", [("data.num_frames", (2, 3)), ("eval.data.frame_buckets", (3,))])
def test_frame_counts_must_be_fixed_and_unpadded(key, value):
    with pytest.raises(ValueError, match="one frame count and no padded frames"):
        camera_baseline.run(two_frame_config(**{key: value}), steps=1, eval_every=1)
