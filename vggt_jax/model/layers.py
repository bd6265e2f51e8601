"""Transformer building blocks shared by DINOv2, the aggregator and the camera head (``vggt/layers``).

Parameter names mirror the official modules (``qkv``, ``proj``, ``q_norm``, ``ls1.gamma``, ``mlp.fc1`` ...), so
weight conversion is a rename table. Shapes: tokens are ``[B, N, C]``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.model import spmd
from vggt_jax.model.attention import dot_product_attention
from vggt_jax.model.rope import Rope

Dtype = Any


def layer_norm(eps: float, dtype: Dtype, param_dtype: Dtype, name: str, use_scale: bool = True) -> nn.LayerNorm:
    """A LayerNorm with PyTorch's numerics: two-pass variance (flax's default fast variance, E[x^2] - E[x]^2,
    loses digits when |mean| >> std) and an explicit eps (PyTorch defaults to 1e-5, flax to 1e-6)."""
    return nn.LayerNorm(
        epsilon=eps,
        dtype=dtype,
        param_dtype=param_dtype,
        use_scale=use_scale,
        use_bias=use_scale,
        use_fast_variance=False,
        name=name,
    )


def constrain(x: jax.Array, *logical: str | None) -> jax.Array:
    """Logical sharding annotation of an activation: ``logical`` names the leading dims ("batch") and the last dim;
    dims in between are unconstrained. A no-op unless a mesh and ``nn.logical_axis_rules`` are active (training,
    vggt_jax.train.sharding), so inference numerics are untouched."""
    head, last = logical[:-1], logical[-1]
    return nn.with_logical_constraint(x, (*head, *([None] * (x.ndim - len(logical))), last))


REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def remat_policy(remat: str):
    """The ``jax.checkpoint`` policy named ``remat`` (a key of ``REMAT_POLICIES``)."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {remat!r}; choose 'none' or one of {sorted(REMAT_POLICIES)}")
    return REMAT_POLICIES[remat]


def block_class(remat: str = "none") -> type[nn.Module]:
    """``Block``, or ``Block`` rematerialised with the named policy (the same parameters and outputs)."""
    if remat == "none":
        return Block
    return nn.remat(Block, policy=remat_policy(remat), prevent_cse=True)


def gelu(x: jax.Array) -> jax.Array:
    """PyTorch's default ``nn.GELU``: the exact erf form."""
    return jax.nn.gelu(x, approximate=False)


# The row chunk of the transformer MLPs, a trace-time setting like the attention kernel (``AggregatorConfig.
# mlp_rows_chunk``, entered by the aggregator for its blocks and its DINO's); 0 (outside any scope) runs all at once.
_ROWS: contextvars.ContextVar[int] = contextvars.ContextVar("vggt_mlp_rows_chunk", default=0)


@contextlib.contextmanager
def mlp_rows_scope(rows: int) -> Iterator[None]:
    """Trace the enclosed model code with its MLPs applied to at most ``rows`` tokens at a time (0: all)."""
    if rows < 0:
        raise ValueError(f"mlp_rows_chunk must be >= 0 (0 = all rows at once), got {rows}")
    token = _ROWS.set(rows)
    try:
        yield
    finally:
        _ROWS.reset(token)


def row_chunks(rows: int, target: int) -> tuple[int, int]:
    """``(steps, chunk)`` covering ``rows`` in chunks of about ``target``: an exact divisor of ``rows`` between
    ``target / 2`` and ``target`` when there is one, else equal chunks of the last one padded. A symbolic ``rows``
    (an export with a polymorphic frame count): a chunk in that window dividing it for every frame count, else
    chunks of ``target`` with a symbolic count."""
    if not isinstance(rows, int):
        for size in range(target, max(1, target // 2) - 1, -1):
            if rows % size == 0:
                return rows // size, size
        return (rows + target - 1) // target, target
    steps = math.ceil(rows / target)
    for s in range(steps, 2 * steps + 1):
        if not rows % s:
            return s, rows // s
    return steps, math.ceil(rows / steps)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (``vggt.layers.mlp.Mlp`` and the tracker's timm-style Mlp).

    Inside ``mlp_rows_scope(rows)`` the tokens go through in chunks of about ``rows`` (an ``nn.scan`` over chunks,
    the same parameters): the [tokens, hidden] activation is then a few MB instead of ~100 MB at 8 frames; the time
    gain on CPU is within run-to-run noise (docs/performance.md). Every row is computed as before. Not under a
    partitioned training mesh, whose partitioner would gather the rows a traced chunk index slices."""

    hidden_features: int
    out_features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def __call__(self, x: jax.Array) -> jax.Array:
        target = _ROWS.get()
        rows = math.prod(x.shape[:-1])
        small = isinstance(rows, int) and rows <= target
        if not target or small or self.is_initializing() or spmd.partitioned():
            return self.rows(x)
        steps, chunk = row_chunks(rows, target)
        flat = x.reshape(rows, x.shape[-1])
        if not isinstance(rows, int) or steps * chunk != rows:  # a symbolic pad may be 0 for some frame counts
            flat = jnp.pad(flat, ((0, steps * chunk - rows), (0, 0)))
        scan = nn.scan(
            lambda mlp, carry, xs: (carry, mlp.rows(xs)),
            variable_broadcast="params",
            split_rngs={"params": False},
            check_constancy_invariants=False,  # the body only reads the parameters; saves a trace of it
        )
        _, out = scan(self, None, flat.reshape(steps, chunk, flat.shape[-1]))
        return out.reshape(steps * chunk, -1)[:rows].reshape(*x.shape[:-1], self.out_features)

    @nn.compact
    def rows(self, x: jax.Array) -> jax.Array:
        dense = lambda n, name: nn.Dense(  # noqa: E731
            n, use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )
        h = constrain(gelu(dense(self.hidden_features, "fc1")(x)), "batch", "act_mlp")
        return dense(self.out_features, "fc2")(h)


class LayerScale(nn.Module):
    dim: int
    init_values: float
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gamma = self.param("gamma", nn.initializers.constant(self.init_values), (self.dim,), self.param_dtype)
        return x * gamma.astype(self.dtype)


class QKVMaskedBias(nn.Module):
    """VGGT-Omega's ``LinearKMaskedBias``: a Dense to q, k, v whose bias is multiplied by [1, 0, 1] per third, so
    the k part of the stored bias is ignored (upstream keeps the mask as a buffer; it is a constant here)."""

    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        third = self.features // 3
        mask = np.concatenate([np.ones(third), np.zeros(third), np.ones(third)]).astype(np.dtype(self.param_dtype))
        y = jax.lax.dot_general(x.astype(self.dtype), kernel.astype(self.dtype), (((x.ndim - 1,), (0,)), ((), ())))
        return y + (bias * mask).astype(self.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with optional qk-norm (LayerNorm over head_dim, affine) and RoPE, applied in
    that order, as ``vggt.layers.attention.Attention`` (and VGGT-Omega's ``SelfAttention``, whose qkv bias may be
    k-masked)."""

    dim: int
    num_heads: int
    qkv_bias: bool = True
    proj_bias: bool = True
    qk_norm: bool = False
    norm_eps: float = 1e-5
    mask_k_bias: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, rope: Rope | None = None, key_mask: jax.Array | None = None) -> jax.Array:
        """``x: [B, N, C]``; ``rope``: the rotary embedding of q and k; ``key_mask: [B, N]`` bool (False =
        padding)."""
        b, n, c = x.shape
        head_dim = c // self.num_heads
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, name="qkv")
        if self.mask_k_bias:
            qkv = QKVMaskedBias(3 * c, **kw)(x)
        else:
            qkv = nn.Dense(3 * c, use_bias=self.qkv_bias, **kw)(x)
        qkv = qkv.reshape(b, n, 3, self.num_heads, head_dim)
        qkv = constrain(qkv, "batch", "act_tokens", None, "act_heads", None)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.qk_norm:
            q = layer_norm(self.norm_eps, self.dtype, self.param_dtype, "q_norm")(q)
            k = layer_norm(self.norm_eps, self.dtype, self.param_dtype, "k_norm")(k)
        if rope is not None:
            q, k = rope(q), rope(k)
        out = dot_product_attention(q, k, v, key_mask).reshape(b, n, c)
        return nn.Dense(c, use_bias=self.proj_bias, dtype=self.dtype, param_dtype=self.param_dtype, name="proj")(out)


class Block(nn.Module):
    """Pre-norm transformer block: ``x += ls1(attn(norm1(x))); x += ls2(mlp(norm2(x)))``."""

    dim: int
    num_heads: int
    mlp_ratio: float = 4.0
    init_values: float | None = None
    qk_norm: bool = False
    norm_eps: float = 1e-5
    mask_k_bias: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, rope: Rope | None = None, key_mask: jax.Array | None = None) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        ls = (
            (lambda name: LayerScale(self.dim, self.init_values, name=name, **kw))
            if self.init_values
            else (lambda name: lambda y: y)
        )
        h = layer_norm(self.norm_eps, self.dtype, self.param_dtype, "norm1")(x)
        attn = Attention(
            self.dim,
            self.num_heads,
            qk_norm=self.qk_norm,
            norm_eps=1e-5,
            mask_k_bias=self.mask_k_bias,
            name="attn",
            **kw,
        )
        h = attn(h, rope, key_mask)
        x = x + ls("ls1")(h)
        h = layer_norm(self.norm_eps, self.dtype, self.param_dtype, "norm2")(x)
        h = Mlp(int(self.dim * self.mlp_ratio), self.dim, name="mlp", **kw)(h)
        return x + ls("ls2")(h)
