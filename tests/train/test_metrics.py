"""Evaluation metrics on hand-made cases, and the evaluation loop on held-out synthetic scenes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from conftest import micro_train_config, random_rotation

from vggt_jax.geometry import extri_intri_to_pose_encoding
from vggt_jax.train import loop, metrics
from vggt_jax.train import sharding as sh
from vggt_jax.train.trainer import Trainer


def cameras(rot, trans):
    return jnp.asarray(np.concatenate([rot, trans[..., None]], -1), jnp.float32)


def test_relative_pose_errors():
    rng = np.random.default_rng(0)
    rot = random_rotation(rng, 4).reshape(1, 4, 3, 3)
    trans = rng.normal(size=(1, 4, 3))
    gt = cameras(rot, trans)
    i, j = np.triu_indices(4, 1)  # the pairs i < j
    r, t, baseline = metrics.relative_pose_errors(gt, gt)
    assert float(jnp.max(r[:, i, j])) < 0.05 and float(jnp.max(t[:, i, j])) < 0.05
    assert float(jnp.min(baseline[:, i, j])) > 0.1
    # A global rigid motion and scale of every camera changes no relative rotation or translation direction.
    g = random_rotation(rng, 1)[0]
    pred = cameras(rot @ g.T, 2.5 * trans)  # world rotated by g: E' = E diag(g^T), scaled translations
    r, t, _ = metrics.relative_pose_errors(pred, gt)
    assert float(jnp.max(r[:, i, j])) < 0.05 and float(jnp.max(t[:, i, j])) < 0.05
    # Rotating camera 1 by 10 degrees about its optical axis: a 10 degree rotation error on pairs with camera 1.
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    rot2 = rot.copy()
    rot2[0, 1] = rz @ rot[0, 1]
    trans2 = trans.copy()
    trans2[0, 1] = rz @ trans[0, 1]
    r, _, _ = metrics.relative_pose_errors(cameras(rot2, trans2), gt)
    np.testing.assert_allclose(np.asarray(r[0, 0, 1]), 10.0, atol=0.05)
    np.testing.assert_allclose(np.asarray(r[0, 2, 3]), 0.0, atol=0.05)


def test_auc():
    assert metrics.auc(np.zeros(10)) == 1.0
    assert metrics.auc(np.full(10, 45.0)) == 0.0
    # Errors of 14.5 degrees pass thresholds 15..30: 16 of 30.
    assert abs(metrics.auc(np.full(4, 14.5)) - 16 / 30) < 1e-12


def test_summarise_skips_pairs_without_baseline():
    out = {
        "pose_rot_err": np.array([[[0.0, 1.0], [0.0, 0.0]]]),
        "pose_trans_err": np.array([[[0.0, 80.0], [0.0, 0.0]]]),
        "pose_pair_mask": np.array([[[False, True], [False, False]]]),
        "pose_has_baseline": np.array([[[True, False], [True, True]]]),
        "pixel_count": np.array([1]),
    }
    res = metrics.summarise([out])
    assert res["camera_pairs"] == 1 and res["camera_pairs_with_baseline"] == 0
    assert res["camera_rra30"] == 1.0 and np.isnan(res["camera_auc30"])


def test_camera_spread_separates_image_conditioned_from_constant_poses():
    rng = np.random.default_rng(1)
    b, s, hw = 3, 4, (8, 8)
    ext = cameras(random_rotation(rng, b * s).reshape(b, s, 3, 3), rng.normal(size=(b, s, 3)))
    intr = jnp.broadcast_to(jnp.array([[8.0, 0, 3.5], [0, 8.0, 3.5], [0, 0, 1]]), (b, s, 3, 3))
    gt = {
        "extrinsics": ext,
        "intrinsics": intr,
        "point_masks": jnp.ones((b, s) + hw, bool),
        "depths": jnp.ones((b, s) + hw),
    }
    exact = extri_intri_to_pose_encoding(ext, intr, hw, xnp=jnp)
    constant = jnp.broadcast_to(exact[:1, :1], exact.shape)
    half = exact.at[..., :7].multiply(0.5)
    spread = lambda pose_enc: metrics.summarise([metrics.batch_metrics({"pose_enc": pose_enc}, gt)])["camera_spread"]  # noqa: E731
    np.testing.assert_allclose(spread(exact), 1.0, rtol=1e-6)
    np.testing.assert_allclose(spread(half), 0.5, rtol=1e-6)
    assert spread(constant) == 0.0
    # Frame 0 (always the identity) and padded frames do not count: corrupting them leaves pred == gt elsewhere.
    frame_mask = jnp.ones((b, s), bool).at[:, 3].set(False)
    corrupt = exact.at[:, 0].set(100.0).at[:, 3].set(-100.0)
    out = metrics.batch_metrics({"pose_enc": corrupt}, {**gt, "frame_mask": frame_mask})
    np.testing.assert_allclose(metrics.summarise([out])["camera_spread"], 1.0, rtol=1e-6)


def test_evaluation_on_held_out_scenes_reports_every_metric():
    """``loop.evaluate`` end to end: held-out synthetic scenes through the sharded eval step on the (2, 2, 2) mesh."""
    config = micro_train_config(**{"eval.num_batches": 2})
    trainer = Trainer.create(config, sh.make_mesh(2, 2, 2))
    with jax.set_mesh(trainer.mesh), sh.logical_axis_rules():
        params = trainer.init_state(0)["params"]
        eval_step = trainer.jit_eval_step()
        res = loop.evaluate(trainer, eval_step, params, config)
        again = loop.evaluate(trainer, eval_step, params, config)
    np.testing.assert_equal(again, res)  # the same held-out batches every time (NaN == NaN here)
    expected = {"camera_auc30", "camera_rra30", "camera_rta30", "camera_rot_err_median", "camera_spread"}
    expected |= {"depth_abs_rel", "depth_delta1.25", "point_err", "loss/objective", "loss/loss_camera"}
    assert expected <= set(res), sorted(res)
    assert res["camera_pairs"] == 2 * 4 * 3  # 2 batches x 4 scenes x 3 pairs of 3 frames
    for key in ("camera_rra30", "depth_delta1.25"):
        assert 0.0 <= res[key] <= 1.0
    # A random head's poses follow its random image features, so they vary: the spread is far from 0.
    assert np.isfinite(res["camera_spread"]) and res["camera_spread"] > 0.05
