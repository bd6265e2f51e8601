"""Frame parallelism: the model traced inside ``shard_map`` with the frames of a scene split over a mesh axis.

Almost all of VGGT is per frame: DINOv2, the frame-attention blocks, the DPT heads. Only four places mix frames,
and each asks this module what to do, so the model code is the same with and without sharding:

- the special tokens: frame 0 of the scene gets its own camera/register token, so a shard needs its frames'
  global indices (``first_frame``);
- global attention: each shard's queries attend every frame's keys and values, gathered from all shards
  (``gather_frames`` inside ``dot_product_attention``, under ``global_attention()``); queries, the MLP and the
  activations stay local, so a shard holds 1/N of the tokens plus one layer's keys and values;
- the camera head: its trunk attends across frames, over one token per frame: gathered, run on every shard;
- the tracker: it correlates every frame with frame 0's query features: the track features are gathered.

Outside ``frame_axis_scope`` (single-device inference) every function here is the identity.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import jax

_AXIS: contextvars.ContextVar[str | None] = contextvars.ContextVar("vggt_frame_axis", default=None)
_GATHER_KV: contextvars.ContextVar[bool] = contextvars.ContextVar("vggt_gather_kv", default=False)


@contextlib.contextmanager
def frame_axis_scope(axis_name: str | None) -> Iterator[None]:
    """Trace the enclosed model code as one shard of frames split over the mesh axis ``axis_name`` (inside
    ``shard_map``); ``None`` is single-device."""
    token = _AXIS.set(axis_name)
    try:
        yield
    finally:
        _AXIS.reset(token)


def frame_axis() -> str | None:
    return _AXIS.get()


@contextlib.contextmanager
def global_attention() -> Iterator[None]:
    """Attention traced inside attends the keys and values of every shard (the aggregator's global blocks)."""
    token = _GATHER_KV.set(True)
    try:
        yield
    finally:
        _GATHER_KV.reset(token)


def first_frame(frames: int) -> jax.Array | int:
    """Global index of this shard's first frame, for a shard of ``frames`` frames (0 unsharded)."""
    axis = _AXIS.get()
    return 0 if axis is None else jax.lax.axis_index(axis) * frames


def gather_frames(x: jax.Array, axis: int) -> jax.Array:
    """Every shard's ``x`` concatenated along ``axis`` in frame order (shards hold contiguous frames)."""
    name = _AXIS.get()
    return x if name is None else jax.lax.all_gather(x, name, axis=axis, tiled=True)


def local_frames(x: jax.Array, axis: int, frames: int) -> jax.Array:
    """This shard's ``frames`` frames of a gathered ``x`` (the inverse of ``gather_frames``)."""
    if _AXIS.get() is None:
        return x
    return jax.lax.dynamic_slice_in_dim(x, first_frame(frames), frames, axis=axis)


def gather_keys_values(
    k: jax.Array, v: jax.Array, key_mask: jax.Array | None
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Under ``global_attention()`` on a frame shard: the keys, values and key mask ``[B, N_local, ...]`` of all
    shards, ``[B, N, ...]``; otherwise unchanged. The token axis of global attention is frame-major, so the shards'
    tokens concatenate in order."""
    if not _GATHER_KV.get() or _AXIS.get() is None:
        return k, v, key_mask
    return gather_frames(k, 1), gather_frames(v, 1), None if key_mask is None else gather_frames(key_mask, 1)
