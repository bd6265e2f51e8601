"""Windowed inference (reconstruct.windows): one window is the one-shot path; a 520-frame loop whose windows are
the ground truth in their own frame under a random Sim(3) plus known noise chains to an ATE under a bound derived
from that noise, lower with loop closure; an overlap without confident points fails naming the window."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import micro
from vggt_jax.evaluate.long_sequence import HEIGHT, RING, WIDTH, NoisyWindows, ate_bound
from vggt_jax.evaluate.metrics import ate
from vggt_jax.inference.predictor import Predictor
from vggt_jax.model.random_init import random_params
from vggt_jax.model.vggt import VGGT
from vggt_jax.reconstruct.sim3 import sim3_exp, sim3_log
from vggt_jax.reconstruct.windows import WindowAlignmentError, WindowOptions, plan_windows, run_windows


def test_plan_windows_and_sim3_log():
    windows = plan_windows(100, 40, 10)
    assert [w[0] for w in windows] == [0, 30, 60] and all(len(w) == 40 for w in windows) and windows[-1][-1] == 99
    assert len(plan_windows(40, 40, 10)) == 1
    with pytest.raises(ValueError, match="--overlap"):
        WindowOptions(window=10, overlap=10)
    params = np.random.default_rng(0).normal(0, 0.3, (5, 7))
    np.testing.assert_allclose(sim3_log(sim3_exp(params, 2.0), 2.0), params, atol=1e-12)


def test_one_window_is_the_one_shot_path():
    config = micro().replace(track_head=None)
    images = np.random.default_rng(0).random((3, 3, 28, 28)).astype(np.float32)
    shape = jax.ShapeDtypeStruct((1, 3, 3, 28, 28), jnp.float32)
    predictor = Predictor(config, random_params(VGGT(config), shape), compilation_cache=False)
    ref = predictor(images)
    out = run_windows(lambda idx: predictor(images[idx]), 3, WindowOptions(window=4, overlap=2))
    assert len(out.windows) == 1 and out.loops == []
    for key, value in ref.arrays().items():
        np.testing.assert_array_equal(out.predictions.arrays()[key], value, err_msg=key)
    assert ref.frame_descriptor.shape == (3, 2 * config.aggregator.embed_dim)


@pytest.fixture(scope="module")
def loop_runs(tmp_path_factory):
    num_frames, opts = 520, WindowOptions(window=60, overlap=30, loop_threshold=0.9)
    runs = {}
    for closure in (False, True):
        predict = NoisyWindows(num_frames)
        directory = tmp_path_factory.mktemp(f"windows_{closure}")
        runs[closure] = run_windows(predict, num_frames, dataclasses.replace(opts, loop_closure=closure), directory)
    return predict, runs, opts


def test_long_loop_ate_under_the_noise_bound_and_lower_with_loop_closure(loop_runs):
    predict, runs, opts = loop_runs
    gt = predict.ext
    errors = {closure: ate(run.predictions.extrinsic, gt)[0] for closure, run in runs.items()}
    bound = ate_bound(predict, len(runs[False].windows), opts.overlap)
    assert 0.01 < bound < 0.1 * 2 * RING  # the bound is a few percent of the loop's diameter, not vacuous
    assert errors[False] < bound, (errors, bound)
    assert errors[True] < bound
    assert errors[True] < 0.85 * errors[False], errors  # measured: 0.0070 against 0.0093
    closed = runs[True]
    assert closed.loops and all(loop["frame_b"] - loop["frame_a"] >= 2 * opts.window for loop in closed.loops)
    assert all(loop["frame_a"] < 60 and loop["frame_b"] > 460 for loop in closed.loops)  # the real revisit
    assert closed.pose_graph["rms_after"] < closed.pose_graph["rms_before"]
    for record in runs[False].windows[1:]:
        assert record["inlier_fraction"] > 0.9 and record["relative_residual"] < 0.05
    # The outputs sit on disk as memory maps, in camera 0's frame, with every frame filled.
    pred = closed.predictions
    assert isinstance(pred.depth, np.memmap) and pred.depth.shape == (520, HEIGHT, WIDTH)
    assert np.isfinite(pred.world_points_from_depth).all() and np.all(pred.depth > 0)


def test_overlap_without_confident_points_names_the_window(tmp_path):
    predict = NoisyWindows(150)

    def blank_overlap(frames):
        pred = predict(frames)
        if frames[0] == 60:
            pred.depth_conf[:30] = 0.0  # frames 60-89, window 2's overlap with window 1
        return pred

    with pytest.raises(WindowAlignmentError, match=r"window 2 \(frames 60-119\) against window 1 on frames 60-89"):
        run_windows(blank_overlap, 150, WindowOptions(window=60, overlap=30, loop_closure=False), tmp_path / "w")
