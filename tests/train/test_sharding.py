"""The sharding rules on the real parameter trees (abstract: nothing is allocated)."""

from __future__ import annotations

import functools
import re

import flax
import jax
import pytest
from jax.sharding import PartitionSpec as P

from vggt_jax.config import get_config
from vggt_jax.convert import abstract_params
from vggt_jax.model.layout import stacked_path, with_scan_layers
from vggt_jax.train import sharding as sh


def spec(*axes):
    """A PartitionSpec without trailing Nones (how logical_to_spec writes them)."""
    axes = list(axes)
    while axes and axes[-1] is None:
        axes.pop()
    return P(*axes)


@functools.cache
def abstract(name: str):
    return abstract_params(with_scan_layers(get_config(name), False))["params"]  # the unrolled layout


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


@functools.cache
def abstract_scan(name: str):
    return abstract_params(with_scan_layers(get_config(name), True))["params"]


def test_scan_layout_stacks_shard_like_their_layers():
    """A stack of blocks (scan layout) has the axes of one block's param behind an unsharded leading layer axis."""
    config = get_config("vggt_1b")
    unrolled = sh.param_logical_axes(abstract("vggt_1b"))
    scanned = sh.param_logical_axes(abstract_scan("vggt_1b"))
    is_axes = lambda x: isinstance(x, tuple)  # noqa: E731
    unrolled = flax.traverse_util.flatten_dict(unrolled, is_leaf=lambda _, x: is_axes(x))
    scanned = flax.traverse_util.flatten_dict(scanned, is_leaf=lambda _, x: is_axes(x))
    reached = set()
    for path, axes in unrolled.items():
        target = stacked_path(path, config)
        target = path if target is None else target[0]
        assert scanned[target] == (axes if target == path else ("layers", *axes)), path
        reached.add(target)
    assert reached == set(scanned)
    assert scanned[("aggregator", "frame_blocks", "attn", "qkv", "kernel")] == ("layers", "embed", "qkv")


@pytest.mark.parametrize("shape", [(1, 8, 1), (2, 2, 2)])
def test_1b_scan_layout_is_sufficiently_sharded(shape):
    mesh = sh.make_mesh(*shape)
    params = abstract_scan("vggt_1b")
    shardings = sh.param_shardings(params, mesh)
    flat = {"/".join(str(k.key) for k in p): s.spec for p, s in jax.tree_util.tree_leaves_with_path(shardings)}
    fsdp, tensor = ("fsdp" if mesh.shape["fsdp"] > 1 else None), ("tensor" if mesh.shape["tensor"] > 1 else None)
    assert flat["aggregator/global_blocks/attn/qkv/kernel"] == spec(None, fsdp, tensor)
    assert flat["aggregator/frame_blocks/mlp/fc2/kernel"] == spec(None, tensor, fsdp)
    assert flat["aggregator/patch_embed/blocks/mlp/fc1/kernel"] == spec(None, fsdp, tensor)
    # The layer axis is never sharded, not even by a mesh axis that another dim cannot take.
    # 18 leaves per aggregator block (with qk-norm), 14 per DINOv2 block.
    stacks = [s for k, s in flat.items() if re.search(sh.STACKED_PARAMS, "/" + k)]
    assert len(stacks) == 2 * 18 + 14 and all(s == P() or s[0] is None for s in stacks)
    sharded = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), params, shardings)
    assert sh.assert_params_sufficiently_sharded(sharded, mesh) < 0.002  # as the unrolled layout


def test_layer_axis_takes_no_leftover_mesh_axis():
    mesh = sh.make_mesh(2, 2, 2)
    # fsdp cannot split the 9 rows; the 24 layers would be the largest dim, but the layer axis stays whole.
    assert sh.logical_to_spec(("layers", "embed", "mlp"), (24, 9, 8), mesh) == P(None, None, ("tensor", "fsdp"))
    assert sh.logical_to_spec((None, "embed", "mlp"), (24, 9, 8), mesh) == P("fsdp", None, "tensor")


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
