"""Scaled dot-product attention kernels.

``dot_product_attention`` is the reference softmax(q k^T / sqrt(d)) v with the softmax in at least float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """``q: [B, Nq, H, D]``, ``k, v: [B, Nk, H, D]`` -> ``[B, Nq, H, D]`` (scale D**-0.5, no mask)."""
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("bqhd,bkhd->bhqk", q * jnp.asarray(scale, q.dtype), k)
    acc_dtype = jnp.promote_types(logits.dtype, jnp.float32)
    probs = jax.nn.softmax(logits.astype(acc_dtype), axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)
