"""The sharded train step: 8 fake CPU devices on a (data, fsdp, tensor) = (2, 2, 2) mesh against one device,
non-finite batches, donation, gradient accumulation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import micro_train_config, random_batch

from vggt_jax.train import sharding as sh
from vggt_jax.train.trainer import Trainer

# Four scenes, loss groups of two: the objective does not depend on the mesh (group_size=0 would).
CONFIG = micro_train_config(heads=("camera", "depth", "point"), **{"loss.group_size": 2, "loss.normalize_gt": True})
BATCHES = [random_batch(i, b=4, s=3) for i in range(3)]


def train(mesh, batches, config=CONFIG):
    trainer = Trainer.create(config, mesh)
    with jax.set_mesh(mesh), sh.logical_axis_rules():
        state = trainer.init_state(0)
        init = jax.device_get(state["params"])
        step = trainer.jit_train_step()
        metrics = []
        for b in batches:
            state, m = step(state, trainer.global_batch(b))
            metrics.append(jax.device_get(m))
    return trainer, init, state, metrics


@pytest.fixture(scope="module")
def single():
    return train(sh.make_mesh(1, 1, 1, devices=jax.devices()[:1]), BATCHES)


@pytest.fixture(scope="module")
def sharded():
    return train(sh.make_mesh(2, 2, 2), BATCHES)


def test_sharded_steps_match_one_device(single, sharded):
    _, init1, state1, m1 = single
    trainer8, init8, state8, m8 = sharded
    for a, b in zip(jax.tree.leaves(init1), jax.tree.leaves(init8), strict=True):
        np.testing.assert_array_equal(a, b)  # the same random init whatever the sharding
    # The params really are split. The micro model is mostly small vectors, which stay whole: 4.6% of its bytes
    # above an even split (the 1B model: 0.1%, test_sharding.py).
    assert sh.assert_params_sufficiently_sharded(state8["params"], trainer8.mesh, tolerance=0.05) < 0.05
    qkv = state8["params"]["aggregator"]["frame_blocks_0"]["attn"]["qkv"]["kernel"]
    assert qkv.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    # fp32 with a different reduction order (sums split over devices). Losses agree to 1e-5 relative (measured 4e-7).
    # Parameters: AdamW divides each gradient by its own RMS, so where a gradient is near zero a round-off difference
    # becomes a visible difference in that element's step. Measured after three steps of lr 1e-3: worst element
    # 1.3e-5 (0.5% of the largest parameter change, 2.4e-3), mean 1e-8; bounds: 2% and 1e-7.
    for a, b in zip(m1, m8, strict=True):
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    p1, p8 = jax.device_get(state1["params"]), jax.device_get(state8["params"])
    pairs = list(zip(jax.tree.leaves(p1), jax.tree.leaves(p8), strict=True))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(init1), jax.tree.leaves(p1), strict=True))
    worst = max(float(np.abs(a - b).max()) for a, b in pairs)
    mean = sum(float(np.abs(a - b).sum()) for a, b in pairs) / sum(a.size for a, _ in pairs)
    assert moved > 1e-3  # the comparison is not vacuous
    assert worst < 0.02 * moved and mean < 1e-7, (worst, moved, mean)
    assert all(bool(m["finite"]) for m in m1 + m8)
    assert {"loss/loss_camera", "loss/loss_conf_depth", "loss/loss_grad_point", "grad_norm/aggregator"} <= set(m1[0])


def test_non_finite_batch_is_skipped(single):
    trainer, _, state, _ = single
    mesh = trainer.mesh
    bad = dict(BATCHES[0])
    bad["images"] = bad["images"].copy()
    bad["images"][0, 0, 0, 0, 0] = np.nan
    before = jax.device_get(state)
    with jax.set_mesh(mesh), sh.logical_axis_rules():
        step = trainer.jit_train_step()
        state_in = jax.device_put(before, trainer.state_shardings)
        after, m = step(state_in, trainer.global_batch(bad))
        assert state_in["params"]["camera_head"]["embed_pose"]["kernel"].is_deleted()  # donated
        after = jax.device_get(after)
        assert not bool(m["finite"])
        assert int(after["skipped"]) == int(before["skipped"]) + 1
        assert int(after["step"]) == int(before["step"]) + 1
        for a, b in zip(jax.tree.leaves(before["params"]), jax.tree.leaves(after["params"]), strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(jax.tree.leaves(before["opt_state"]), jax.tree.leaves(after["opt_state"]), strict=True):
            np.testing.assert_array_equal(a, b)
        # The next finite batch trains normally.
        state2, m2 = step(jax.device_put(after, trainer.state_shardings), trainer.global_batch(BATCHES[1]))
        assert bool(m2["finite"]) and int(state2["skipped"]) == int(after["skipped"])


def test_gradient_accumulation_matches_one_batch():
    """Two microbatches of two scenes each and one batch of four, with per-scene loss groups (so the objective is
    the same mean): the same loss, gradient norms and update."""
    over = {"loss.group_size": 1, "loss.normalize_gt": True}
    mesh = sh.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    _, init, one, m1 = train(mesh, BATCHES[:1], micro_train_config(heads=("camera",), **over))
    _, _, two, m2 = train(mesh, BATCHES[:1], micro_train_config(heads=("camera",), **over, **{"optim.accum_steps": 2}))
    for k in ("loss/objective", "grad_norm", "grad_norm/aggregator", "grad_norm/camera"):
        np.testing.assert_allclose(m2[0][k], m1[0][k], rtol=1e-5, err_msg=k)
    p1, p2 = jax.tree.leaves(jax.device_get(one["params"])), jax.tree.leaves(jax.device_get(two["params"]))
    pairs = list(zip(p1, p2, strict=True))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(init), p1, strict=True))
    worst = max(float(np.abs(a - b).max()) for a, b in pairs)
    assert worst < 0.02 * moved, (worst, moved)


def test_split_microbatches_keeps_every_shard():
    from vggt_jax.train.step import split_microbatches

    x = jnp.arange(8)
    np.testing.assert_array_equal(split_microbatches({"x": x}, 2)["x"], [[0, 2, 4, 6], [1, 3, 5, 7]])
    with pytest.raises(ValueError, match="divisible"):
        split_microbatches({"x": jnp.arange(6)}, 4)


def test_omega_trains_with_camera_and_depth_losses():
    """VGGT-Omega's outputs go through the same losses (its one camera pass as a one-entry pose_enc_list, its depth
    map) and train step, sharded on the (2, 2, 2) mesh; the loss falls over a few steps on one repeated batch."""
    config = micro_train_config(heads=("camera", "depth"), **{"model.variant": "omega_micro", "data.img_size": 32})
    batch = random_batch(0, b=4, s=3, h=32, w=32)
    trainer, init, state, metrics = train(sh.make_mesh(2, 2, 2), [batch] * 4, config)
    assert trainer.model.config.family == "vggt_omega"
    assert all(bool(m["finite"]) for m in metrics)
    assert {"loss/loss_camera", "loss/loss_conf_depth", "grad_norm/aggregator"} <= set(metrics[0])
    assert metrics[-1]["loss/objective"] < metrics[0]["loss/objective"], [m["loss/objective"] for m in metrics]
