"""Mesh, logical axes and the one rules table that maps them to mesh axes.

The mesh has three named axes: ``data`` (pure data parallelism: parameters replicated), ``fsdp`` (data parallelism
with parameters and optimiser state sharded, gathered per use) and ``tensor`` (Megatron-style: attention heads and
MLP hidden units split). Params are a plain nested dict without partitioning boxes, so their logical axes come
from a declarative table of ``(path regex, logical axes)`` (``PARAM_AXES``); activations carry
``nn.with_logical_constraint`` annotations in the model (batch, tokens, embed). ``LOGICAL_AXIS_RULES`` (maxtext's
``logical_axis_rules``) maps both to mesh axes, so changing the parallelism of a run is a config edit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from vggt_jax.train.optimizer import path_str

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axes. Parameters: "embed" (the model width) is FSDP-sharded; "mlp", "qkv" and "heads" (the
# fused attention in/out features) are tensor-parallel; conv kernels split their output channels over tensor and
# fsdp and never their input channels or taps (see CONV_KERNEL_NOTE). Activations: the batch over every
# data-parallel axis; the hidden units of the MLP over tensor. A dim that a mesh axis does not divide stays
# unsharded on that axis (see logical_to_sharding).
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("qkv", "tensor"),
    ("heads", "tensor"),
    ("conv_taps", None),
    ("conv_in", None),
    ("conv_out", ("tensor", "fsdp")),
    ("act_tokens", None),
    ("act_embed", None),
    ("act_mlp", "tensor"),
    ("act_heads", "tensor"),
    ("layers", None),
)

# (regex searched in the '/'-joined param path, logical axes of a param of that rank). The first entry whose regex
# matches and whose rank equals the param's wins; unmatched params are replicated (and counted by the
# sufficiently-sharded check).
PARAM_AXES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    # attention: fused qkv [C, 3C] (and the update former's packed in_proj), output projection [C, C]
    (r"/(qkv|in_proj)/kernel$", ("embed", "qkv")),
    (r"/(qkv|in_proj)/bias$", ("qkv",)),
    (r"/(proj|out_proj)/kernel$", ("heads", "embed")),
    # MLPs: fc1 [C, 4C], fc2 [4C, C]
    (r"/fc1/kernel$", ("embed", "mlp")),
    (r"/fc1/bias$", ("mlp",)),
    (r"/fc2/kernel$", ("mlp", "embed")),
    # every other dense layer [in, out] (embed_pose, poseLN_modulation, input_transform, flow_head, ...)
    (r"/kernel$", ("embed", "mlp")),
    # convolutions and transposed convolutions [kh, kw, in, out]
    (r"/kernel$", ("conv_taps", "conv_taps", "conv_in", "conv_out")),
    # learned tokens and position embeddings: shard their width
    (r"(_token|_tokens|pos_embed|virual_tracks)$", (None, None, None, "embed")),
    (r"(_token|_tokens|pos_embed|virual_tracks)$", (None, None, "embed")),
    (r"(_token|_tokens|pos_embed|virual_tracks)$", (None, "embed")),
)


# The scan layout's stacks of blocks (vggt_jax.model.layout): a leading "layers" axis, never sharded (the scan takes
# one layer per step), before the logical axes of one block's param from PARAM_AXES.
STACKED_PARAMS = r"/aggregator/(frame_blocks|global_blocks|patch_embed/blocks)/"
# Logical axes that a mesh axis skipped elsewhere for divisibility must not move to.
UNSHARDED_AXES = ("layers", "conv_taps", "conv_in")
# CONV_KERNEL_NOTE: XLA's SPMD partitioner (jax/jaxlib 0.10.2, CPU) computes a wrong input gradient for a 3x3
# convolution whose kernel's input channels are sharded over the same mesh axis as the batch of its input, when the
# input's channels are also sharded over a third axis: a (2, 2, 2) mesh, x [12, 4, 4, 16] on P(("data", "fsdp"),
# None, None, "tensor"), kernel on P(None, None, "fsdp", "tensor"): 92% relative error in dL/dx, while every
# one- and two-axis mesh and the forward pass are exact. It made sharded DPT-head gradients wrong by up to 100%
# (tests/train/test_step.py). Kernels split over their output channels only are exact in every layout we tried.


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, fsdp, tensor)`` mesh over ``devices`` (default all); one size may be -1 (the rest)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [data, fsdp, tensor]
    if sizes.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got data={data} fsdp={fsdp} tensor={tensor}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"{len(devices)} devices are not divisible by fsdp*tensor*data={known}")
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise ValueError(
            f"mesh {dict(zip(MESH_AXES, sizes, strict=True))} needs {math.prod(sizes)} devices, have {len(devices)}"
        )
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def param_logical_axes(params: Any) -> Any:
    """Tree of logical-axis tuples (one name or None per dim) for a params tree (arrays or ShapeDtypeStructs)."""

    def axes(path, leaf):
        name = "/" + path_str(path)
        lead, rank = ((), len(leaf.shape))
        if re.search(STACKED_PARAMS, name):
            lead, rank = ("layers",), rank - 1
        for pattern, logical in PARAM_AXES:
            if len(logical) == rank and re.search(pattern, name):
                return (*lead, *logical)
        return (*lead, *(None,) * rank)

    return jax.tree_util.tree_map_with_path(axes, params)


def _mesh_axes_of(logical: str | None, rules) -> tuple[str, ...]:
    if logical is None:
        return ()
    for name, target in rules:
        if name == logical:
            if target is None:
                return ()
            return (target,) if isinstance(target, str) else tuple(target)
    raise ValueError(f"logical axis {logical!r} has no rule in {[r[0] for r in rules]}")


def logical_to_spec(
    logical: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules=LOGICAL_AXIS_RULES
) -> PartitionSpec:
    """Logical axes of an array -> a PartitionSpec on ``mesh``.

    Each dim gets the mesh axes its rule names, skipping axes of size 1, axes an earlier dim took, and axes that
    would not divide the dim evenly. A mesh axis skipped for divisibility moves to the largest other dim it divides
    (a ``[9, 2048]`` kernel whose 9 rows cannot be split over fsdp is split along its columns instead), so odd-sized
    layers do not end up replicated; never to an ``UNSHARDED_AXES`` dim."""
    used: set[str] = set()
    chosen: list[list[str]] = [[] for _ in shape]
    leftover = []
    for i, (dim, name) in enumerate(zip(shape, logical, strict=True)):
        for axis in _mesh_axes_of(name, rules):
            size = mesh.shape[axis]
            if size == 1 or axis in used:
                continue
            if dim % (math.prod(mesh.shape[a] for a in chosen[i]) * size):
                leftover.append(axis)
                continue
            chosen[i].append(axis)
            used.add(axis)
    for axis in leftover:
        if axis in used:
            continue
        size = mesh.shape[axis]
        fits = [
            i
            for i, dim in enumerate(shape)
            if logical[i] not in UNSHARDED_AXES and dim % (math.prod(mesh.shape[a] for a in chosen[i]) * size) == 0
        ]
        if fits:
            i = max(fits, key=lambda j: shape[j] // math.prod(mesh.shape[a] for a in chosen[j]))
            chosen[i].append(axis)
            used.add(axis)
    spec = [None if not c else c[0] if len(c) == 1 else tuple(c) for c in chosen]
    while spec and spec[-1] is None:
        spec.pop()
    return PartitionSpec(*spec)


def param_shardings(params: Any, mesh: Mesh, rules=LOGICAL_AXIS_RULES) -> Any:
    """NamedShardings for a params tree (arrays or abstract), from PARAM_AXES and the rules."""
    logical = param_logical_axes(params)
    return jax.tree.map(
        lambda leaf, axes: NamedSharding(mesh, logical_to_spec(axes, leaf.shape, mesh, rules)),
        params,
        logical,
        is_leaf=lambda x: isinstance(x, tuple) and all(a is None or isinstance(a, str) for a in x),
    )


def tree_shardings(tree: Any, params: Any, params_shardings: Any, mesh: Mesh) -> Any:
    """Shardings for any tree holding parameter-shaped leaves (the train state, an optimiser state): a leaf whose
    key path ends with a parameter's path and has its shape takes that parameter's sharding (Adam's ``mu`` and
    ``nu`` of ``aggregator/camera_token`` shard like the token); every other leaf is replicated."""
    index = {
        tuple(path_str(p).split("/")): (leaf.shape, s)
        for (p, leaf), s in zip(
            jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(params_shardings), strict=True
        )
    }
    replicated = NamedSharding(mesh, PartitionSpec())

    def assign(path, leaf):
        keys = tuple(path_str(path).split("/"))
        for start in range(len(keys)):
            hit = index.get(keys[start:])
            if hit is not None and tuple(hit[0]) == tuple(leaf.shape):
                return hit[1]
        return replicated

    return jax.tree_util.tree_map_with_path(assign, tree)


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Batch arrays are split along their leading (scene) axis over every data-parallel mesh axis."""
    del ndim
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def data_parallel_size(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def assert_params_sufficiently_sharded(params: Any, mesh: Mesh, tolerance: float = 0.02) -> float:
    """Raise unless the parameters are split across the model-parallel axes (fsdp x tensor) up to ``tolerance``:
    the per-device bytes may exceed ``total / (fsdp * tensor)`` by at most that fraction of the total. Returns the
    fraction of parameter bytes that each device holds beyond perfect sharding (maxtext's
    ``assert_params_sufficiently_sharded``)."""
    model_parallel = mesh.shape["fsdp"] * mesh.shape["tensor"]
    total = per_device = 0
    for leaf in jax.tree.leaves(params):
        nbytes = math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize
        shard = leaf.sharding.shard_shape(leaf.shape)
        per_device += math.prod(shard) * np.dtype(leaf.dtype).itemsize
        total += nbytes
    excess = (per_device - total / model_parallel) / total
    if excess > tolerance:
        raise AssertionError(
            f"parameters are not sufficiently sharded: each device holds {per_device / 2**20:.1f} MiB of "
            f"{total / 2**20:.1f} MiB, {excess:.1%} of the total above an even split over fsdp*tensor="
            f"{model_parallel} (tolerance {tolerance:.0%}); add rules to vggt_jax.train.sharding.PARAM_AXES"
        )
    return excess


def logical_axis_rules(rules=LOGICAL_AXIS_RULES):
    """Context manager activating the rules for ``nn.with_logical_constraint`` inside the model."""
    return nn.logical_axis_rules(rules)
