"""Scaled dot-product attention kernels.

``dot_product_attention`` is the reference softmax(q k^T / sqrt(d)) v with the softmax in at least float32, and an
optional key mask: masked keys get exactly zero weight, so padding a sequence (extra frames or query points that
shape bucketing adds) leaves the outputs of the real tokens unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None = None) -> jax.Array:
    """``q: [B, Nq, H, D]``, ``k, v: [B, Nk, H, D]``, ``key_mask: [B, Nk]`` bool (True = attend) -> ``[B, Nq, H, D]``
    (scale D**-0.5)."""
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * jnp.asarray(scale, q.dtype), k)
    acc_dtype = jnp.promote_types(logits.dtype, jnp.float32)
    logits = logits.astype(acc_dtype)
    if key_mask is not None:
        # The finite minimum, not -inf: a fully masked row (a padded query) stays finite instead of NaN.
        logits = jnp.where(key_mask[:, None, None, :], logits, jnp.finfo(acc_dtype).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)
