"""Where the model is traced for a training mesh: the mesh axes a logical activation axis is split over.

Training (``vggt_jax.train.sharding``) traces the model under ``jax.set_mesh`` and ``nn.logical_axis_rules``, and
XLA's SPMD partitioner splits the computation from the activations' logical annotations. Loops that index a sharded
dim with a traced index (the tiled attention kernel, the dense heads' chunks of frames) are the exception: the
partitioner cannot split them and gathers the whole dim onto every device. Those places ask ``mesh_axes`` how the
dim is split and keep their loops inside each device's part. Outside a training mesh (one device, inference, inside
the frame-parallel ``shard_map``) every dim is whole.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax


def mesh_axes(logical: str, size: int) -> tuple[str, ...]:
    """The mesh axes (size > 1) that split a dim of ``size`` named ``logical`` under the active mesh and logical axis
    rules: the leading axes of its rule whose sizes' product divides ``size`` (the training batch is always a
    multiple of the data-parallel size, so that is all of them there); ``()`` outside a mesh of automatic axes."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or any(t != jax.sharding.AxisType.Auto for t in mesh.axis_types):
        return ()
    rule = nn.logical_to_mesh_axes((logical,))[0]
    out: list[str] = []
    for axis in (rule,) if isinstance(rule, str) else tuple(rule or ()):
        if size % (math.prod(mesh.shape[a] for a in out) * mesh.shape[axis]):
            break
        out.append(axis)
    return tuple(a for a in out if mesh.shape[a] > 1)


def num_shards(logical: str, size: int) -> int:
    """How many parts ``mesh_axes(logical, size)`` splits the dim into (1 outside a training mesh)."""
    mesh = jax.sharding.get_abstract_mesh()
    return math.prod(mesh.shape[a] for a in mesh_axes(logical, size))


def partitioned() -> bool:
    """Whether the model is traced under a training mesh of automatic axes with more than one device."""
    mesh = jax.sharding.get_abstract_mesh()
    return not mesh.empty and mesh.size > 1 and all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
