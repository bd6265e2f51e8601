"""Scaled dot-product attention kernels.

Every implementation computes softmax(q k^T / sqrt(d)) v with the softmax in at least float32 and an optional key
mask: masked keys get exactly zero weight, so padding a sequence (extra frames or query points that shape bucketing
adds) leaves the outputs of the real tokens unchanged.

- ``xla``: the reference. Materialises the ``[B, H, Nq, Nk]`` logits: 4.4 GB per global layer of the 1B model at
  8 frames of 392x518, 18 GB at 16.
- ``chunked``: the same softmax computed block by block with a running max and sum (online softmax, as in flash
  attention), in plain JAX, so any backend runs it in memory independent of the sequence length. On CPU it is also
  several times faster than ``xla`` for long sequences: a [H, q_chunk, kv_chunk] tile stays in cache between the
  two matmuls and the exp, where the full logits make three passes through main memory.
- ``cudnn``: ``jax.nn.dot_product_attention(implementation="cudnn")``, the fused kernel (GPU, bf16/fp16; the
  float32 heads fall back to ``chunked`` / ``xla``).
- ``splash``: the Pallas splash-attention kernel (TPU).
- ``auto``: ``cudnn`` / ``splash`` where the target platform (``platform_scope``, default JAX's backend), dtype and
  (splash) static shapes allow, else ``chunked`` for long sequences and ``xla`` for short ones (short sequences, such as
  every test fixture, keep the reference arithmetic).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from vggt_jax.model import frame_parallel, spmd

IMPLEMENTATIONS = ("auto", "xla", "chunked", "cudnn", "splash")

# ``auto`` switches from xla to chunked at this many logits per (batch, head): below it the [Nq, Nk] tile is small
# and the reference is as fast (measured on CPU: at 1041 x 1041, frame attention of the 1B model at 392x518,
# chunked is already ~2x faster, at 279 x 279 the two are equal).
AUTO_CHUNK_MIN_LOGITS = 512 * 512


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """Which kernel ``dot_product_attention`` uses and the tile sizes of ``chunked``.

    ``q_chunk`` x ``kv_chunk`` bound the logits tile per head (a sequence is split into equal chunks no longer
    than these); ``batch_chunk`` bounds the batch entries (frames, for frame attention) one step processes, so the
    working set does not grow with the frame count either.
    """

    implementation: str = "xla"
    q_chunk: int = 256
    kv_chunk: int = 512
    batch_chunk: int = 1

    def __post_init__(self):
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"unknown attention implementation {self.implementation!r}; choose one of {IMPLEMENTATIONS}"
            )
        if min(self.q_chunk, self.kv_chunk, self.batch_chunk) < 1:
            raise ValueError(f"attention chunk sizes must be >= 1, got {self}")


# The kernel choice is a trace-time setting of a whole model (``VGGT`` enters it from its config), not an argument
# threaded through every block: blocks, DINOv2 and the heads call ``dot_product_attention(q, k, v, mask)``. Outside
# any scope it is the reference ``xla``, so a block used on its own keeps the reference arithmetic.
_SCOPE: contextvars.ContextVar[AttentionConfig | None] = contextvars.ContextVar("vggt_attention", default=None)


@contextlib.contextmanager
def attention_scope(config: AttentionConfig) -> Iterator[None]:
    """Trace the enclosed model code with ``config``'s attention."""
    token = _SCOPE.set(config)
    try:
        yield
    finally:
        _SCOPE.reset(token)


# The kernels traced inside ``record_kernels`` (what ``auto`` chose, for the lowering matrix and the exporter).
_RECORD: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("vggt_attention_record", default=None)


@contextlib.contextmanager
def record_kernels() -> Iterator[list[str]]:
    """Collect the name of every attention kernel traced inside (one entry per traced call)."""
    kernels: list[str] = []
    token = _RECORD.set(kernels)
    try:
        yield kernels
    finally:
        _RECORD.reset(token)


def _record(name: str) -> None:
    kernels = _RECORD.get()
    if kernels is not None:
        kernels.append(name)


def dot_product_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None = None, config: AttentionConfig | None = None
) -> jax.Array:
    """``q: [B, Nq, H, D]``, ``k, v: [B, Nk, H, D]``, ``key_mask: [B, Nk]`` bool (True = attend) -> ``[B, Nq, H, D]``
    (scale D**-0.5), with ``config`` or else the enclosing ``attention_scope``'s kernel.

    In a frame-sharded model's global attention, ``k``, ``v`` and ``key_mask`` are this shard's and the keys of all
    shards are attended, gathered or passed round a ring (``frame_parallel``; the ring always runs the chunked
    kernel, which can merge partial results)."""
    config = config or _SCOPE.get() or AttentionConfig()
    exchange = frame_parallel.global_kv_exchange()
    if exchange is not None:
        axis_name, mode = exchange
        if mode == "ring":
            _record("ring")
            return ring_attention(q, k, v, key_mask, axis_name, config)
        k, v, key_mask = (frame_parallel.gather_frames(x, 1) if x is not None else None for x in (k, v, key_mask))
    implementation = config.implementation
    if implementation == "auto":
        implementation = select_implementation(q, k)
    elif implementation == "cudnn" and q.dtype not in (jnp.bfloat16, jnp.float16):
        # cuDNN's kernel takes bf16/fp16: the float32 heads (camera head, upstream's autocast-free heads) run the
        # plain-JAX kernel.
        implementation = fallback_implementation(q, k)
    _record(implementation)
    if implementation == "xla":
        return xla_attention(q, k, v, key_mask)
    if implementation == "cudnn":
        # Per device like the tiled kernels: JAX would otherwise partition it with a Python callback
        # (CustomSPMDPartitioning), which a serialized program cannot hold.
        kernel = cudnn_attention
    elif implementation == "chunked":
        kernel = functools.partial(
            chunked_attention, q_chunk=config.q_chunk, kv_chunk=config.kv_chunk, batch_chunk=config.batch_chunk
        )
    else:
        kernel = splash_attention
    return per_device(kernel, q, k, v, key_mask)


def per_device(kernel, q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None) -> jax.Array:
    """``kernel(q, k, v, key_mask)`` run by each device on its own batch entries and heads (``shard_map``) when the
    model is traced for a training mesh (``vggt_jax.model.spmd``: "batch" and "act_heads" name the mesh axes);
    elsewhere the kernel runs as is.

    The tiled kernels loop over tiles with traced indices into the batch dim, which XLA's SPMD partitioner cannot
    split: it gathered the whole global batch onto every device, and each device computed every scene's attention
    (measured on the 1B train step on 8 devices: 8x the work, and 0.56 GB per gathered layer at 6 frames)."""
    batch_axes, head_axes = spmd.mesh_axes("batch", q.shape[0]), spmd.mesh_axes("act_heads", q.shape[2])
    if not batch_axes and not head_axes:
        return kernel(q, k, v, key_mask)
    qkv = P(batch_axes or None, None, head_axes or None, None)
    # Pallas kernels (splash) declare their outputs without varying-axes types, which check_vma rejects.
    shard_map = functools.partial(jax.shard_map, check_vma=kernel is not splash_attention)
    if key_mask is None:
        return shard_map(lambda q, k, v: kernel(q, k, v, None), in_specs=(qkv,) * 3, out_specs=qkv)(q, k, v)
    specs = (qkv, qkv, qkv, P(batch_axes or None, None))
    return shard_map(kernel, in_specs=specs, out_specs=qkv)(q, k, v, key_mask)


# The platform the model is traced for. ``jax.default_backend()`` unless a caller lowering for another platform says
# which (``platform_scope``: ``vggt_jax.export`` lowers for cuda and tpu on a CPU-only machine).
_PLATFORM: contextvars.ContextVar[str | None] = contextvars.ContextVar("vggt_platform", default=None)
_PLATFORM_NAMES = {"gpu": "cuda", "cuda": "cuda", "rocm": "rocm", "tpu": "tpu", "cpu": "cpu"}


@contextlib.contextmanager
def platform_scope(platform: str) -> Iterator[None]:
    """Trace the enclosed model code for ``platform`` ("cpu", "cuda"/"gpu", "rocm", "tpu"): what ``auto`` picks."""
    if platform not in _PLATFORM_NAMES:
        raise ValueError(f"unknown platform {platform!r}; choose one of {sorted(_PLATFORM_NAMES)}")
    token = _PLATFORM.set(_PLATFORM_NAMES[platform])
    try:
        yield
    finally:
        _PLATFORM.reset(token)


def target_platform() -> str:
    """The platform being traced for: the enclosing ``platform_scope``'s, else JAX's default backend's."""
    return _PLATFORM.get() or _PLATFORM_NAMES.get(jax.default_backend(), jax.default_backend())


def is_static(*shapes: tuple) -> bool:
    """Whether every dimension is a known integer (not symbolic, as in a ``jax.export`` with a polymorphic frame
    count)."""
    return all(isinstance(d, int) for shape in shapes for d in shape)


def select_implementation(q: jax.Array, k: jax.Array) -> str:
    """The ``auto`` choice for these shapes on the target platform (``target_platform``): cuDNN's fused kernel on
    GPU for bf16/fp16 with head dim <= 128, splash on TPU, else the tiled kernel for long sequences and the
    reference for short ones. A symbolic sequence length (an export with a polymorphic frame count) rules out
    splash, whose block mask is built in numpy for static lengths; cuDNN takes it."""
    platform = target_platform()
    fused_dtype = q.dtype in (jnp.bfloat16, jnp.float16)
    if platform == "cuda" and fused_dtype and q.shape[-1] <= 128:
        return "cudnn"
    if platform == "tpu" and is_static(q.shape, k.shape):
        return "splash"
    return fallback_implementation(q, k)


def fallback_implementation(q: jax.Array, k: jax.Array) -> str:
    """The plain-JAX kernel for these shapes: ``chunked`` for long (or symbolic) sequences, else ``xla``."""
    if not is_static(q.shape[1:2], k.shape[1:2]):
        return "chunked"
    return "chunked" if q.shape[1] * k.shape[1] >= AUTO_CHUNK_MIN_LOGITS else "xla"


def _acc_dtype(dtype) -> jnp.dtype:
    return jnp.promote_types(dtype, jnp.float32)


def xla_attention(q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None = None) -> jax.Array:
    """The reference: full logits, softmax, weighted sum."""
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * jnp.asarray(scale, q.dtype), k)
    acc_dtype = _acc_dtype(logits.dtype)
    logits = logits.astype(acc_dtype)
    if key_mask is not None:
        # The finite minimum, not -inf: a fully masked row (a padded query) stays finite instead of NaN.
        logits = jnp.where(key_mask[:, None, None, :], logits, jnp.finfo(acc_dtype).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


def _split(n: int, max_chunk: int) -> tuple[int, int]:
    """(chunks, chunk size): ``n`` cut into equal chunks of about ``max_chunk``. An exact split with chunks of
    ``2/3 * max_chunk`` to ``1.5 * max_chunk`` wins (no padding, so no key mask: 26% faster at the 1B model's 8-frame
    global attention, 8328 = 12 x 694 keys, than 17 x 490 with a masked tail); else equal chunks of at most
    ``max_chunk``, the last one padded, so a 1041-token frame becomes 3 x 347 rather than 512 + 512 + 17.

    A symbolic ``n`` (frames x tokens in an export with a polymorphic frame count): an exact chunk size in the same
    window if one divides ``n`` for every frame count, else chunks of ``max_chunk`` with a symbolic count."""
    if not isinstance(n, int):
        low, high = max(1, math.ceil(max_chunk / 1.5)), math.floor(1.5 * max_chunk)
        for size in sorted(range(low, high + 1), key=lambda c: abs(c - max_chunk)):
            if n % size == 0:
                return n // size, size
        return (n + max_chunk - 1) // max_chunk, max_chunk
    count = max(1, math.ceil(n / max_chunk))
    for exact in range(max(1, math.ceil(n / (1.5 * max_chunk))), max(1, math.floor(n / (max_chunk / 1.5))) + 1):
        if n % exact == 0:
            return exact, n // exact
    return count, math.ceil(n / count)


def _largest_divisor_at_most(n: int, limit: int) -> int:
    if not isinstance(n, int):  # a symbolic batch (frames): 1 divides it whatever its value
        return 1
    return max(d for d in range(1, min(n, max(limit, 1)) + 1) if n % d == 0)


class _Tiling:
    """The tile layout the chunked forward and backward share: ``[B, N, H, E]`` cut into ``[B/gb, n_chunks, gb, H,
    chunk, E]`` (one transpose outside the loops, contiguous tiles inside), and the key validity per key tile."""

    def __init__(self, q, k, key_mask, q_chunk, kv_chunk, batch_chunk):
        self.b, self.nq, self.h, d = q.shape
        self.nk = k.shape[1]
        self.gb = _largest_divisor_at_most(self.b, batch_chunk)
        self.groups = self.b // self.gb
        self.n_qc, self.cq = _split(self.nq, q_chunk)
        self.n_kc, self.ck = _split(self.nk, kv_chunk)
        self.needs_mask = key_mask is not None or self.n_kc * self.ck != self.nk
        valid = jnp.ones((self.b, self.nk), bool) if key_mask is None else key_mask.astype(bool)
        valid = jnp.pad(valid, ((0, 0), (0, self.n_kc * self.ck - self.nk)))
        self.valid = valid.reshape(self.groups, self.gb, self.n_kc, self.ck).transpose(0, 2, 1, 3)

    def queries(self, x):
        return self._tiles(x, self.n_qc, self.cq)

    def keys(self, x):
        return self._tiles(x, self.n_kc, self.ck)

    def _tiles(self, x, n_chunks, chunk):
        x = jnp.pad(x, ((0, 0), (0, n_chunks * chunk - x.shape[1]), (0, 0), (0, 0)))
        return x.reshape(self.groups, self.gb, n_chunks, chunk, self.h, x.shape[-1]).transpose(0, 2, 1, 4, 3, 5)

    def untile(self, x, n):  # [B/gb, n_chunks, gb, H, chunk, E] -> [B, n, H, E]
        return x.transpose(0, 2, 1, 4, 3, 5).reshape(self.b, -1, self.h, x.shape[-1])[:, :n]

    def masked(self, s, g, j):
        """Logits ``s [gb, H, cq, ck]`` of key tile (g, j) with masked and padding keys at the finite minimum."""
        if not self.needs_mask:
            return s
        return jnp.where(_tile(self.valid, g, j)[:, None, None, :], s, jnp.finfo(s.dtype).min)


def _loop(lower: int, upper: int, body, init):
    """``fori_loop`` as a ``while_loop`` whatever the bounds. The kernel's loops are never differentiated (its
    gradient is the custom backward), and a while loop keeps them whole under ``jax.checkpoint`` inside a scan: with
    a static trip count ``fori_loop`` is a ``scan``, which remat's partial evaluation splits, precomputing the
    mask-only part of every iteration (each tile's broadcast key mask, ``[gb, H, cq, ck]``: the whole attention
    matrix in bool) and keeping it for the backward pass."""

    def step(carry):
        i, value = carry
        return i + 1, body(i, value)

    return jax.lax.while_loop(lambda carry: carry[0] < upper, step, (jnp.asarray(lower), init))[1]


def _tile(x, g, j):
    """``x[g, j]`` with traced indices."""
    return jax.lax.dynamic_slice(x, (g, j) + (0,) * (x.ndim - 2), (1, 1, *x.shape[2:]))[0, 0]


def chunked_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    key_mask: jax.Array | None = None,
    *,
    q_chunk: int = 256,
    kv_chunk: int = 512,
    batch_chunk: int = 1,
) -> jax.Array:
    """Online-softmax attention over [batch_chunk, H, q_chunk, kv_chunk] tiles; same contract as ``xla_attention``.

    One loop over (batch group, query chunk) tiles and, inside it, one over key chunks (``fori_loop``: the program
    does not grow with the sequence). Per query row it keeps the running max ``m``, the running sum of
    ``exp(logit - m)`` and the running weighted sum of values, rescaled by ``exp(m_old - m_new)`` when the max grows;
    the result divides once at the end. Masked and padding keys get the finite minimum as their logit, as in the
    reference, so they weigh exactly zero in any row that has a real key.

    Each query tile's output overwrites that tile in the loop's buffer of query tiles, and the key loop starts from
    the first key tile's values: no zero-initialised buffers, which XLA would hoist to the start of the program and
    keep alive across every layer (measured: 16 MB per attention layer at 4 frames of 392x518).

    The gradient is flash attention's backward (``_chunked_bwd``): it keeps the output and one log-sum-exp per query
    row and recomputes each tile's probabilities, so training memory does not grow with the square of the sequence
    either (differentiating the loops would keep every tile's probabilities: the whole attention matrix).
    """
    return _chunked_attention(q, k, v, key_mask, q_chunk, kv_chunk, batch_chunk)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _chunked_attention(q, k, v, key_mask, q_chunk, kv_chunk, batch_chunk):
    return _chunked(q, k, v, key_mask, q_chunk, kv_chunk, batch_chunk, stats=False)


def _chunked_fwd(q, k, v, key_mask, q_chunk, kv_chunk, batch_chunk):
    d = q.shape[-1]
    stats = _chunked(q, k, v, key_mask, q_chunk, kv_chunk, batch_chunk, stats=True)
    acc, m, denom = stats[..., :d], stats[..., d], stats[..., d + 1]
    out = (acc / denom[..., None]).astype(q.dtype)
    return out, (q, k, v, key_mask, out, m + jnp.log(denom))


def _chunked_bwd(q_chunk, kv_chunk, batch_chunk, residuals, d_out):
    """Flash attention's backward over the forward's tiles. With ``P = exp(s - lse)`` recomputed per tile and
    ``delta = rowsum(dO * O)``: ``dV = P^T dO``, ``dS = P (dO V^T - delta)``, ``dQ = dS K / sqrt(d)``,
    ``dK = dS^T Q / sqrt(d)``; accumulated in the accumulation dtype."""
    q, k, v, key_mask, out, lse = residuals
    d = q.shape[-1]
    acc_dtype = _acc_dtype(q.dtype)
    scale = d**-0.5
    t = _Tiling(q, k, key_mask, q_chunk, kv_chunk, batch_chunk)
    n_qc, n_kc, gb, h, cq, ck = t.n_qc, t.n_kc, t.gb, t.h, t.cq, t.ck

    delta = jnp.sum(d_out.astype(acc_dtype) * out.astype(acc_dtype), axis=-1)
    qt, dot = t.queries(q * jnp.asarray(scale, q.dtype)), t.queries(d_out)
    rows = t.queries(jnp.stack([lse, delta], axis=-1).astype(acc_dtype))  # [..., cq, 2]
    kt, vt = t.keys(k), t.keys(v)
    tile = _tile

    def query_tile(i, carry):
        dq, dk, dv = carry
        g, iq = i // n_qc, i % n_qc
        qc, doc, row = tile(qt, g, iq), tile(dot, g, iq), tile(rows, g, iq)
        lse_c, delta_c = row[..., :1], row[..., 1:]

        def key_tile(j, inner):
            dq_c, dk, dv = inner
            kc, vc = tile(kt, g, j), tile(vt, g, j)
            s = jnp.einsum("ghqd,ghkd->ghqk", qc, kc, preferred_element_type=acc_dtype)
            p = jnp.exp(t.masked(s, g, j) - lse_c)  # as the forward
            dp = jnp.einsum("ghqd,ghkd->ghqk", doc, vc, preferred_element_type=acc_dtype)
            ds = p * (dp - delta_c)
            if t.needs_mask:  # masked logits are a constant: no gradient
                ds = jnp.where(_tile(t.valid, g, j)[:, None, None, :], ds, 0)
            dv_j = jnp.einsum("ghqk,ghqd->ghkd", p.astype(doc.dtype), doc, preferred_element_type=acc_dtype)
            dk_j = jnp.einsum("ghqk,ghqd->ghkd", ds.astype(qc.dtype), qc, preferred_element_type=acc_dtype)
            dq_c = dq_c + jnp.einsum("ghqk,ghkd->ghqd", ds.astype(kc.dtype), kc, preferred_element_type=acc_dtype)
            add = lambda buf, x: jax.lax.dynamic_update_slice(  # noqa: E731
                buf, (tile(buf, g, j) + x)[None, None], (g, j, 0, 0, 0, 0)
            )
            return dq_c, add(dk, dk_j), add(dv, dv_j)

        dq_c = jnp.zeros_like(qc, shape=(gb, h, cq, d), dtype=acc_dtype)
        dq_c, dk, dv = _loop(0, n_kc, key_tile, (dq_c, dk, dv))
        dq = jax.lax.dynamic_update_slice(dq, dq_c[None, None], (g, iq, 0, 0, 0, 0))
        return dq, dk, dv

    # zeros_like: inside shard_map the buffers vary over the mesh axes as q does, as a loop carry must.
    zeros = lambda n, c: jnp.zeros_like(q, shape=(t.groups, n, gb, h, c, d), dtype=acc_dtype)  # noqa: E731
    dq, dk, dv = _loop(0, t.groups * n_qc, query_tile, (zeros(n_qc, cq), zeros(n_kc, ck), zeros(n_kc, ck)))
    # The tiles of q carry the scale already: dK = dS^T (Q / sqrt(d)), dQ = (dS K) / sqrt(d).
    dq = (t.untile(dq, t.nq) * scale).astype(q.dtype)
    return dq, t.untile(dk, t.nk).astype(k.dtype), t.untile(dv, t.nk).astype(v.dtype), None


_chunked_attention.defvjp(_chunked_fwd, _chunked_bwd)


def _chunked(q, k, v, key_mask, q_chunk, kv_chunk, batch_chunk, stats: bool) -> jax.Array:
    """``chunked_attention``; with ``stats`` the unnormalised ``[B, Nq, H, D + 2]`` (weighted sum of values, row
    max, row sum of exp(logit - max)) in the accumulation dtype, for combining with other key blocks."""
    d = q.shape[-1]
    acc_dtype = _acc_dtype(q.dtype)
    scale = d**-0.5
    t = _Tiling(q, k, key_mask, q_chunk, kv_chunk, batch_chunk)
    groups, gb, h, n_qc, cq, n_kc = t.groups, t.gb, t.h, t.n_qc, t.cq, t.n_kc
    qt = t.queries(q * jnp.asarray(scale, q.dtype)).reshape(groups * n_qc, gb, h, cq, d)
    kt, vt = t.keys(k), t.keys(v)
    tile = _tile

    def scores(qc, g, j):  # [gb, H, cq, ck]
        return t.masked(jnp.einsum("ghqd,ghkd->ghqk", qc, tile(kt, g, j), preferred_element_type=acc_dtype), g, j)

    def weighted(p, g, j):  # [gb, H, cq, D]
        vc = tile(vt, g, j)
        return jnp.einsum("ghqk,ghkd->ghqd", p.astype(vc.dtype), vc, preferred_element_type=acc_dtype)

    def attend(qc, g):
        s = scores(qc, g, 0)
        m = s.max(-1, keepdims=True)
        p = jnp.exp(s - m)
        denom, acc = p.sum(-1, keepdims=True), weighted(p, g, 0)

        def step(j, carry):
            m, denom, acc = carry
            s = scores(qc, g, j)
            m_new = jnp.maximum(m, s.max(-1, keepdims=True))
            p = jnp.exp(s - m_new)
            correction = jnp.exp(m - m_new)
            return m_new, denom * correction + p.sum(-1, keepdims=True), acc * correction + weighted(p, g, j)

        if not isinstance(n_kc, int) or n_kc > 1:  # a symbolic count may be 1: the loop then runs no step
            m, denom, acc = _loop(1, n_kc, step, (m, denom, acc))
        return jnp.concatenate([acc, m, denom], axis=-1) if stats else acc / denom

    def body(i, buf):
        qc = jax.lax.dynamic_index_in_dim(buf, i, keepdims=False)[..., :d].astype(q.dtype)
        return jax.lax.dynamic_update_index_in_dim(buf, attend(qc, i // n_qc).astype(buf.dtype), i, 0)

    if stats:  # the loop's buffer: the query tiles with room for the two statistics (exact in acc_dtype)
        qt = jnp.pad(qt.astype(acc_dtype), ((0, 0),) * 4 + ((0, 2),))
    out = _loop(0, groups * n_qc, body, qt)  # [B/gb * n_qc, gb, H, cq, D (+ 2)]
    return t.untile(out.reshape(groups, n_qc, gb, h, cq, out.shape[-1]), t.nq)


def ring_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None, axis_name: str, config: AttentionConfig
) -> jax.Array:
    """Attention of this shard's queries to the keys of every shard of ``axis_name`` (inside ``shard_map``), without
    gathering them: the key/value blocks travel round the ring of shards (``ppermute``), one block per step, and each
    step's online-softmax statistics merge into the running ones. Holds two blocks of keys and values at a time
    instead of all of them; the same result as attending the gathered keys up to summation order."""
    n = jax.lax.axis_size(axis_name)
    d = q.shape[-1]
    ring = [(i, (i + 1) % n) for i in range(n)]

    def block(k, v, mask):
        out = _chunked(q, k, v, mask, config.q_chunk, config.kv_chunk, config.batch_chunk, stats=True)
        return out[..., :d], out[..., d : d + 1], out[..., d + 1 :]

    def step(_, carry):
        acc, m, denom, k, v, mask = carry
        k, v, mask = jax.tree_util.tree_map(lambda x: jax.lax.ppermute(x, axis_name, ring), (k, v, mask))
        acc2, m2, denom2 = block(k, v, mask)
        m_new = jnp.maximum(m, m2)
        a, b = jnp.exp(m - m_new), jnp.exp(m2 - m_new)
        return acc * a + acc2 * b, m_new, denom * a + denom2 * b, k, v, mask

    acc, m, denom = block(k, v, key_mask)
    acc, _, denom, *_ = jax.lax.fori_loop(1, n, step, (acc, m, denom, k, v, key_mask))
    return (acc / denom).astype(q.dtype)


def cudnn_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None = None, implementation: str = "cudnn"
) -> jax.Array:
    """cuDNN's fused flash attention (GPU; bf16/fp16 inputs, head dim <= 128).

    The key mask goes to cuDNN as key lengths (its padding mask): every mask this model builds is a prefix per batch
    entry (real frames, registers and queries first, padding after: ``Predictor``'s buckets, the data pipeline's
    frame padding, frame shards gathered in order). A ``[B, 1, 1, Nk]`` boolean mask is not an option: cuDNN wants
    a bias of the full ``[Nq, Nk]`` sequence lengths.

    Odd sequence lengths (VGGT's 1041 tokens per 392x518 frame, 1 + 4 + 28 x 37) are padded by one token, the extra
    key masked by the lengths and the extra query cut: jax 0.10's cuDNN forward rule for training counts its
    placeholder bias as a bias and then requires even lengths, so the training step would not lower otherwise.
    Symbolic lengths (an exported inference program) are not padded: inference takes any length.
    ``implementation="xla"`` runs the same call through XLA's kernel (how this is tested without a GPU)."""
    nq, nk = q.shape[1], k.shape[1]
    pad_q, pad_k = (n % 2 if isinstance(n, int) else 0 for n in (nq, nk))
    if key_mask is None and not pad_k:
        lengths = None
    else:
        lengths = jnp.full(k.shape[:1], nk, jnp.int32) if key_mask is None else jnp.sum(key_mask, -1, jnp.int32)
    if pad_q:
        q = jnp.pad(q, ((0, 0), (0, 1), (0, 0), (0, 0)))
    if pad_k:
        k, v = (jnp.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0))) for x in (k, v))
    out = jax.nn.dot_product_attention(q, k, v, key_value_seq_lengths=lengths, implementation=implementation)
    return out[:, :nq] if pad_q else out


def splash_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None = None, *, interpret: bool = False
) -> jax.Array:
    """The Pallas splash-attention kernel (TPU; ``interpret=True`` runs it anywhere, slowly, for tests).

    Sequences are padded to the kernel's 128-token blocks; the key mask becomes segment ids (real keys 1, masked and
    padding keys 0, every query 1), so a query attends exactly the unmasked keys."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    b, nq, h, d = q.shape
    nk = k.shape[1]
    block = 128
    nq_pad, nk_pad = -nq % block, -nk % block
    scale = d**-0.5
    qh = jnp.pad((q * jnp.asarray(scale, q.dtype)).transpose(0, 2, 1, 3), ((0, 0), (0, 0), (0, nq_pad), (0, 0)))
    kh = jnp.pad(k.transpose(0, 2, 1, 3), ((0, 0), (0, 0), (0, nk_pad), (0, 0)))
    vh = jnp.pad(v.transpose(0, 2, 1, 3), ((0, 0), (0, 0), (0, nk_pad), (0, 0)))
    valid = jnp.ones((b, nk), bool) if key_mask is None else key_mask.astype(bool)
    kv_ids = jnp.pad(valid, ((0, 0), (0, nk_pad))).astype(jnp.int32)
    q_ids = jnp.ones((b, nq + nq_pad), jnp.int32)
    full = splash.MultiHeadMask([splash.FullMask((nq + nq_pad, nk + nk_pad)) for _ in range(h)])
    kernel = splash.make_splash_mha(
        full,
        # The backward blocks too: without them the kernel has no gradient ("Need to specify backward blocks"),
        # and the training step would not lower for TPU.
        block_sizes=splash.BlockSizes(
            block_q=block,
            block_kv=block,
            block_kv_compute=block,
            block_q_dkv=block,
            block_kv_dkv=block,
            block_kv_dkv_compute=block,
            use_fused_bwd_kernel=True,
        ),
        head_shards=1,
        q_seq_shards=1,
        interpret=interpret,
    )
    out = jax.vmap(lambda qb, kb, vb, qi, ki: kernel(qb, kb, vb, segment_ids=splash.SegmentIds(qi, ki)))(
        qh, kh, vh, q_ids, kv_ids
    )
    return out[:, :, :nq].transpose(0, 2, 1, 3).astype(q.dtype)
