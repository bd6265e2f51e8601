"""experiments/shift_probe.py: the shifted pairs, the pose they stand for, and a short run of each learner."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_file_module

from vggt_jax.geometry import pose_encoding_to_extri_intri

shift_probe = load_file_module("experiments/shift_probe.py")
P = shift_probe.PATCH


@pytest.mark.parametrize("content", ["noise", "blob"])
def test_frame_one_is_frame_zero_one_patch_over(content):
    images, sign = shift_probe.make_pairs(np.random.default_rng(0), 16, 56, content)
    assert images.shape == (16, 2, 56, 56, 3) and set(sign) == {-1, 1}
    for (f0, f1), s in zip(images, sign, strict=True):
        if s > 0:  # frame 1 shows what lies right of frame 0: its columns 0..41 are frame 0's 14..55
            np.testing.assert_array_equal(f1[:, : 56 - P], f0[:, P:])
        else:
            np.testing.assert_array_equal(f1[:, P:], f0[:, : 56 - P])
        assert not np.array_equal(f0, f1)


def test_target_pose_turns_camera_one_towards_the_shift():
    size = 56
    enc = shift_probe.target_pose_encoding(np.array([1, -1]), size)
    extrinsics, intrinsics = pose_encoding_to_extri_intri(enc, (size, size))
    np.testing.assert_allclose(extrinsics[:, 0], np.broadcast_to(np.eye(3, 4), (2, 3, 4)), atol=1e-6)
    # A point straight ahead of camera 0 lands one patch left of centre in camera 1 when the content moved left.
    for ext, intr, s in zip(extrinsics[:, 1], intrinsics[:, 1], [1, -1], strict=True):
        p = intr @ (ext[:, :3] @ np.array([0.0, 0.0, 10.0]) + ext[:, 3])
        np.testing.assert_allclose(p[0] / p[2] - intr[0, 2], -s * P, atol=1e-3)
    np.testing.assert_allclose(np.degrees(enc[0, :, 7:]), shift_probe.FOV_DEG, rtol=1e-5)


@pytest.mark.parametrize("learner", ["vggt", "transformer", "cnn"])
def test_each_learner_trains_and_reports_accuracy(learner):
    rows = shift_probe.run(learner, "blob", steps=2, eval_every=1, size=28, batch=4, log=lambda _: None)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)


def test_turn_sign_reads_the_turn_from_the_pose_encoding():
    sign = np.array([1, -1, 1, -1])
    np.testing.assert_array_equal(shift_probe.turn_sign(shift_probe.target_pose_encoding(sign, 28)), sign)


def test_unknown_content_and_learner_are_refused():
    with pytest.raises(ValueError, match="unknown content"):
        shift_probe.make_pairs(np.random.default_rng(0), 2, 28, "stripes")
    with pytest.raises(ValueError, match="unknown learner"):
        shift_probe.make_learner("mlp", "micro", 28)
