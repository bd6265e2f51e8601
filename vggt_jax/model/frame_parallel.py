"""Frame parallelism: the model traced inside ``shard_map`` with the frames of a scene split over a mesh axis.

Almost all of VGGT is per frame: DINOv2, the frame-attention blocks, the DPT heads. Only four places mix frames,
and each asks this module what to do, so the model code is the same with and without sharding:

- the special tokens: frame 0 of the scene gets its own camera/register token, so a shard needs its frames'
  global indices (``first_frame``);
- global attention: each shard's queries attend every frame's keys and values (``dot_product_attention`` under
  ``global_attention()``), either gathered from all shards (a shard holds 1/N of the tokens plus one layer's keys and
  values) or passed round a ring of shards (``ring_attention``: two shards' blocks at a time); queries, the MLPs and
  the activations stay local;
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
_EXCHANGE: contextvars.ContextVar[str] = contextvars.ContextVar("vggt_kv_exchange", default="gather")
KV_EXCHANGES = ("gather", "ring")


@contextlib.contextmanager
def frame_axis_scope(axis_name: str | None, kv_exchange: str = "gather") -> Iterator[None]:
    """Trace the enclosed model code as one shard of frames split over the mesh axis ``axis_name`` (inside
    ``shard_map``); ``None`` is single-device. ``kv_exchange``: how global attention reaches the other shards' keys
    and values: "gather" (all of them, one layer at a time) or "ring" (one shard's block at a time)."""
    if kv_exchange not in KV_EXCHANGES:
        raise ValueError(f"unknown kv_exchange {kv_exchange!r}; choose one of {KV_EXCHANGES}")
    tokens = _AXIS.set(axis_name), _EXCHANGE.set(kv_exchange)
    try:
        yield
    finally:
        _AXIS.reset(tokens[0])
        _EXCHANGE.reset(tokens[1])


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


def global_kv_exchange() -> tuple[str, str] | None:
    """(mesh axis, "gather" or "ring") when attention is traced as global attention on a frame shard, else None."""
    axis = _AXIS.get()
    return None if axis is None or not _GATHER_KV.get() else (axis, _EXCHANGE.get())
