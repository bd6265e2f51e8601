"""Checkpoints: a train state saved on one mesh restores bit-identically onto another, with the data iterator."""

from __future__ import annotations

import jax
import numpy as np
from conftest import micro_train_config

from vggt_jax import data
from vggt_jax.train import sharding as sh
from vggt_jax.train.checkpoint import Checkpointer
from vggt_jax.train.trainer import Trainer

CONFIG = micro_train_config()


def filled_state(trainer: Trainer, seed: int) -> dict:
    """Random values in every leaf of the train state, placed straight into their shardings."""
    rng = np.random.default_rng(seed)

    def fill(a):
        value = (
            rng.normal(size=a.shape).astype(a.dtype)
            if np.issubdtype(a.dtype, np.floating)
            else np.full(a.shape, 7, a.dtype)
        )
        return jax.device_put(value, a.sharding)

    return jax.tree.map(fill, trainer.abstract_state)


def test_state_and_iterator_restore_onto_other_meshes(tmp_path):
    mesh_a = sh.make_mesh(2, 2, 2)
    trainer_a = Trainer.create(CONFIG, mesh_a)
    state = filled_state(trainer_a, 0)
    qkv = state["params"]["aggregator"]["frame_blocks_0"]["attn"]["qkv"]["kernel"]
    assert len(qkv.sharding.device_set) == 8 and qkv.sharding.shard_shape(qkv.shape) != qkv.shape

    it = data.make_train_iterator(CONFIG.data, seed=0)
    next(it), next(it)
    ckpt = Checkpointer(tmp_path / "ckpt", every_steps=1)
    assert ckpt.save(5, state, it)
    ckpt.wait()
    expected_next = next(it)
    host = jax.device_get(state)

    for shape, devices in (((1, 8, 1), None), ((1, 1, 1), jax.devices()[:1]), ((1, 2, 4), None)):
        mesh_b = sh.make_mesh(*shape, devices=devices)
        trainer_b = Trainer.create(CONFIG, mesh_b)
        it_b = data.make_train_iterator(CONFIG.data, seed=0)
        restored = Checkpointer(tmp_path / "ckpt", every_steps=1).restore(None, trainer_b.abstract_state, it_b, mesh_b)
        for (path, a), b, want in zip(
            jax.tree_util.tree_leaves_with_path(host),
            jax.tree.leaves(restored),
            jax.tree.leaves(trainer_b.state_shardings),
            strict=True,
        ):
            assert b.sharding == want, jax.tree_util.keystr(path)
            np.testing.assert_array_equal(np.asarray(b), a, err_msg=jax.tree_util.keystr(path))
        got_next = next(it_b)
        for k in expected_next:
            np.testing.assert_array_equal(got_next[k], expected_next[k], err_msg=k)
    ckpt.close()


def test_latest_and_retention(tmp_path):
    mesh = sh.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    trainer = Trainer.create(CONFIG, mesh)
    state = filled_state(trainer, 1)
    ckpt = Checkpointer(tmp_path / "ckpt", every_steps=2, max_to_keep=2)
    assert ckpt.latest_step() is None
    saved = [step for step in range(1, 8) if ckpt.save(step, state)]
    ckpt.wait()
    assert saved == [2, 4, 6]
    assert ckpt.save(7, state, force=True)
    ckpt.wait()
    assert ckpt.latest_step() == 7
    assert sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit()) == [6, 7]
    ckpt.close()


def test_pretrained_checkpoint_loads_into_either_block_layout(tmp_path):
    """``init_from`` a converted (unrolled) checkpoint: a scan-layout model gets the same weights, stacked, each
    leaf on its shards; the unrolled model gets them as saved."""
    from vggt_jax.convert.checkpoint import save_checkpoint
    from vggt_jax.model.layout import stack_layers
    from vggt_jax.train.trainer import model_config

    config = model_config(CONFIG.model)
    rng = np.random.default_rng(0)
    abstract = Trainer.create(CONFIG, sh.make_mesh(1, 1, 1, devices=jax.devices()[:1])).abstract_params
    params = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(a.dtype), abstract)
    save_checkpoint(tmp_path / "ckpt", config, {"params": params})

    mesh = sh.make_mesh(2, 2, 2)
    for scan in (False, True):
        cfg = micro_train_config(**{"model.scan_layers": scan})
        trainer = Trainer.create(cfg, mesh)
        with jax.set_mesh(mesh):
            state = trainer.load_pretrained(str(tmp_path / "ckpt"), seed=0)
        want = stack_layers(params, config) if scan else params
        got = state["params"]
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b, s in zip(
            jax.tree.leaves(got), jax.tree.leaves(want), jax.tree.leaves(trainer.param_shardings), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(a), b)
            assert a.sharding == s
