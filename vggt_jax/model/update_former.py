"""The tracker's transformer (``vggt/heads/track_modules/blocks.py::EfficientUpdateFormer`` and ``modules.py``).

Tokens are ``[B, N, T, C]``: N tracks (plus learned virtual tracks) by T frames. Attention alternates between time
(each track attends over its frames) and space, where the point tokens talk to each other only through
``num_virtual_tracks`` learned virtual tokens (points -> virtual, virtual self-attention, virtual -> points).
Parameter names mirror upstream, including ``virual_tracks`` (sic) and ``nn.MultiheadAttention``'s packed
``in_proj`` / ``out_proj``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vggt_jax.model.attention import dot_product_attention
from vggt_jax.model.layers import Mlp, layer_norm

Dtype = Any

# Every nn.Linear of the update former is re-initialised by upstream's ``initialize_weights``.
_xavier = nn.initializers.xavier_uniform()
# PyTorch's trunc_normal_(std=0.001) truncates at +-2 absolute, i.e. not at all at this std.
_flow_head_init = nn.initializers.normal(0.001)
_NORM_EPS = 1e-5  # nn.LayerNorm default, used everywhere in the tracker


class PackedInProjection(nn.Module):
    """``nn.MultiheadAttention.in_proj_weight/bias``: one [E, 3E] kernel whose column blocks project q, k, v.

    Called with ``part`` = slice of the 3E output columns, so a cross-attention projects the query with the q block
    and the context with the k, v blocks only."""

    embed_dim: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, part: slice) -> jax.Array:
        e = self.embed_dim
        kernel = self.param("kernel", _xavier, (e, 3 * e), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (3 * e,), self.param_dtype)
        x = x.astype(self.dtype)
        return jnp.dot(x, kernel[:, part].astype(self.dtype)) + bias[part].astype(self.dtype)


class MultiheadAttention(nn.Module):
    """``torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)`` without dropout; ``key_mask``
    (``[B, Lk]`` bool, False = padding) plays the part of its ``key_padding_mask`` (inverted).

    ``query: [B, Lq, E]``, ``context: [B, Lk, E]`` (defaults to ``query``) -> ``[B, Lq, E]``."""

    embed_dim: int
    num_heads: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, query: jax.Array, context: jax.Array | None = None, key_mask: jax.Array | None = None
    ) -> jax.Array:
        e, h = self.embed_dim, self.num_heads
        in_proj = PackedInProjection(e, self.dtype, self.param_dtype, name="in_proj")
        if context is None:
            q, k, v = jnp.split(in_proj(query, slice(0, 3 * e)), 3, axis=-1)
        else:
            q = in_proj(query, slice(0, e))
            k, v = jnp.split(in_proj(context, slice(e, 3 * e)), 2, axis=-1)
        split_heads = lambda t: t.reshape(*t.shape[:-1], h, e // h)  # noqa: E731
        out = dot_product_attention(split_heads(q), split_heads(k), split_heads(v), key_mask)
        out = out.reshape(*out.shape[:-2], e)
        dense = nn.Dense(e, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=_xavier, name="out_proj")
        return dense(out)


class AttnBlock(nn.Module):
    """Self-attention block. Upstream overwrites ``x`` with ``norm1(x)`` before the residual, so the residual
    stream continues from the *normalised* tokens: ``x = norm1(x); x = x + attn(x); x = x + mlp(norm2(x))``."""

    hidden_size: int
    num_heads: int
    mlp_ratio: float = 4.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, key_mask: jax.Array | None = None) -> jax.Array:
        """``x: [B, L, C]``, ``key_mask: [B, L]`` bool (False = padding) -> ``[B, L, C]``."""
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = layer_norm(_NORM_EPS, self.dtype, self.param_dtype, "norm1")(x)
        x = x + MultiheadAttention(self.hidden_size, self.num_heads, name="attn", **kw)(x, key_mask=key_mask)
        h = layer_norm(_NORM_EPS, self.dtype, self.param_dtype, "norm2")(x)
        return x + Mlp(int(self.hidden_size * self.mlp_ratio), self.hidden_size, name="mlp", **kw)(h)


class CrossAttnBlock(nn.Module):
    """Cross-attention block, with the same normalised-residual subtlety as ``AttnBlock``."""

    hidden_size: int
    num_heads: int
    mlp_ratio: float = 4.0
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array, key_mask: jax.Array | None = None) -> jax.Array:
        """``x: [B, Lq, C]``, ``context: [B, Lk, C]``, ``key_mask: [B, Lk]`` bool -> ``[B, Lq, C]``."""
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = layer_norm(_NORM_EPS, self.dtype, self.param_dtype, "norm1")(x)
        context = layer_norm(_NORM_EPS, self.dtype, self.param_dtype, "norm_context")(context)
        x = x + MultiheadAttention(self.hidden_size, self.num_heads, name="cross_attn", **kw)(x, context, key_mask)
        h = layer_norm(_NORM_EPS, self.dtype, self.param_dtype, "norm2")(x)
        return x + Mlp(int(self.hidden_size * self.mlp_ratio), self.hidden_size, name="mlp", **kw)(h)


class EfficientUpdateFormer(nn.Module):
    """``[B, N, T, input_dim]`` track tokens -> ``[B, N, T, output_dim]`` updates (coordinate and feature deltas)."""

    space_depth: int = 6
    time_depth: int = 6
    input_dim: int = 320
    hidden_size: int = 384
    num_heads: int = 8
    output_dim: int = 130
    mlp_ratio: float = 4.0
    add_space_attn: bool = True
    num_virtual_tracks: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jax.Array, frame_mask: jax.Array | None = None, point_mask: jax.Array | None = None
    ) -> jax.Array:
        """``x: [B, N, T, input_dim]``; ``frame_mask: [B, T]`` and ``point_mask: [B, N]`` bool mark real frames
        and tracks (padding is False): padded frames are masked out of time attention and padded tracks out of
        the virtual tracks' attention, so the real tokens' updates do not depend on the padding."""
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        blk = dict(hidden_size=self.hidden_size, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio, **kw)
        x = layer_norm(_NORM_EPS, self.dtype, self.param_dtype, "input_norm")(x)
        tokens = nn.Dense(self.hidden_size, kernel_init=_xavier, name="input_transform", **kw)(x)
        init_tokens = tokens
        b, n_points, t, c = tokens.shape
        if self.add_space_attn:
            if self.space_depth < 1 or self.time_depth < self.space_depth:
                raise ValueError(
                    f"space attention needs 1 <= space_depth <= time_depth, got {self.space_depth}, {self.time_depth}"
                )
            virtual = self.param(
                "virual_tracks", nn.initializers.normal(1.0), (1, self.num_virtual_tracks, 1, c), self.param_dtype
            )
            virtual = jnp.broadcast_to(virtual.astype(self.dtype), (b, self.num_virtual_tracks, t, c))
            tokens = jnp.concatenate([tokens, virtual], axis=1)
        n = tokens.shape[1]

        time_mask = None if frame_mask is None else jnp.repeat(frame_mask, n, axis=0)  # [B * N, T]
        space_mask = None if point_mask is None else jnp.repeat(point_mask, t, axis=0)  # [B * T, N_points]
        j = 0
        for i in range(self.time_depth):
            time_tokens = AttnBlock(name=f"time_blocks_{i}", **blk)(tokens.reshape(b * n, t, c), time_mask)
            tokens = time_tokens.reshape(b, n, t, c)
            if self.add_space_attn and i % (self.time_depth // self.space_depth) == 0:
                space = tokens.transpose(0, 2, 1, 3).reshape(b * t, n, c)
                points, virtual = space[:, :n_points], space[:, n_points:]
                virtual = CrossAttnBlock(name=f"space_virtual2point_blocks_{j}", **blk)(virtual, points, space_mask)
                virtual = AttnBlock(name=f"space_virtual_blocks_{j}", **blk)(virtual)
                points = CrossAttnBlock(name=f"space_point2virtual_blocks_{j}", **blk)(points, virtual)
                space = jnp.concatenate([points, virtual], axis=1)
                tokens = space.reshape(b, t, n, c).transpose(0, 2, 1, 3)
                j += 1

        tokens = tokens[:, :n_points] + init_tokens
        tokens = layer_norm(_NORM_EPS, self.dtype, self.param_dtype, "output_norm")(tokens)
        return nn.Dense(self.output_dim, kernel_init=_flow_head_init, name="flow_head", **kw)(tokens)
