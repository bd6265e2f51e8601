"""The sharding rules on the real parameter trees (abstract: nothing is allocated)."""

from __future__ import annotations

import functools

import jax
import pytest
from jax.sharding import PartitionSpec as P

from vggt_jax.config import get_config
from vggt_jax.convert import abstract_params
from vggt_jax.train import sharding as sh


def spec(*axes):
    """A PartitionSpec without trailing Nones (how logical_to_spec writes them)."""
    axes = list(axes)
    while axes and axes[-1] is None:
        axes.pop()
    return P(*axes)


@functools.cache
def abstract(name: str):
    return abstract_params(get_config(name))["params"]


def sharded_abstract(name: str, mesh):
    params = abstract(name)
    shardings = sh.param_shardings(params, mesh)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), params, shardings)


@pytest.mark.parametrize("shape", [(1, 8, 1), (2, 2, 2), (1, 4, 2)])
def test_1b_params_are_sufficiently_sharded(shape):
    mesh = sh.make_mesh(*shape)
    params = sharded_abstract("vggt_1b", mesh)
    # Only 1-D biases and norms of tensor-parallel layers stay whole: 0.1% of the bytes above an even split.
    assert sh.assert_params_sufficiently_sharded(params, mesh) < 0.002
    flat = {"/".join(str(k.key) for k in p): x for p, x in jax.tree_util.tree_leaves_with_path(params)}
    fsdp, tensor = ("fsdp" if mesh.shape["fsdp"] > 1 else None), ("tensor" if mesh.shape["tensor"] > 1 else None)
    assert flat["aggregator/global_blocks_7/attn/qkv/kernel"].sharding.spec == spec(fsdp, tensor)
    assert flat["aggregator/global_blocks_7/mlp/fc2/kernel"].sharding.spec == spec(tensor, fsdp)
    # Conv kernels: output channels over tensor and fsdp, never input channels (CONV_KERNEL_NOTE in sharding.py).
    out = tuple(a for a in (tensor, fsdp) if a)
    out = out[0] if len(out) == 1 else (out or None)
    assert flat["depth_head/scratch/layer1_rn/kernel"].sharding.spec == spec(None, None, None, out)
    # A layer whose rows fsdp cannot divide is split along its columns instead of replicated.
    assert "fsdp" in str(flat["camera_head/embed_pose/kernel"].sharding.spec) or fsdp is None


def test_too_little_sharding_is_an_error():
    mesh = sh.make_mesh(1, 8, 1)
    params = abstract("tiny")
    replicated = jax.sharding.NamedSharding(mesh, P())
    whole = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), params)
    with pytest.raises(AssertionError, match="not sufficiently sharded"):
        sh.assert_params_sufficiently_sharded(whole, mesh)


def test_logical_to_spec_divisibility():
    mesh = sh.make_mesh(2, 2, 2)
    assert sh.logical_to_spec(("batch", None), (8, 3), mesh) == P(("data", "fsdp"))
    assert sh.logical_to_spec(("batch", None), (2, 3), mesh) == P("data")  # 2 scenes: fsdp cannot split further
    assert sh.logical_to_spec(("embed", "mlp"), (9, 64), mesh) == P(None, ("tensor", "fsdp"))
    assert sh.logical_to_spec((None, None, None, None), (1, 2, 3, 4), mesh) == P()


def test_optimizer_state_shards_like_params():
    import ml_collections

    from vggt_jax.train.config import base_config
    from vggt_jax.train.optimizer import make_optimizer

    mesh = sh.make_mesh(1, 4, 2)
    params = abstract("tiny")
    cfg = ml_collections.ConfigDict(base_config().optim.to_dict())
    cfg.frozen = ("^aggregator/patch_embed/",)
    tx, _ = make_optimizer(cfg, params, 10)
    state = jax.eval_shape(tx.init, params)
    shardings = sh.tree_shardings(state, params, sh.param_shardings(params, mesh), mesh)
    flat = {jax.tree_util.keystr(p): s.spec for p, s in jax.tree_util.tree_leaves_with_path(shardings)}
    mu = [v for k, v in flat.items() if k.endswith("['frame_blocks_0']['attn']['qkv']['kernel']")]
    assert mu == [P("fsdp", "tensor")] * 2  # mu and nu
    assert not any("patch_embed" in k for k in flat)  # frozen: no optimiser state at all
    assert all(v == P() for k, v in flat.items() if k.endswith("count"))


def test_mesh_errors():
    with pytest.raises(ValueError, match="at most one"):
        sh.make_mesh(-1, -1, 1)
    with pytest.raises(ValueError, match="needs"):
        sh.make_mesh(2, 2, 4)
