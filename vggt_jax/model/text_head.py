"""VGGT-Omega's text-alignment head (``vggt_omega/models/heads/text_alignment_head.py``).

A learned language token is read out over the camera and register tokens of all frames and projected to a unit
embedding meant to align with a text encoder's (the release ships no text encoder; nothing consumes it).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vggt_jax.config import TextHeadConfig
from vggt_jax.model.camera_head import special_token_trunk
from vggt_jax.model.layers import gelu, layer_norm

Dtype = Any


class TextAlignmentHead(nn.Module):
    config: TextHeadConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, special: jax.Array, frame_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """``special [B, S, R, dim_in]`` (last aggregator layer) -> (``text_alignment_embedding [B, dim_in]``, unit
        L2 norm; ``text_alignment_token [B, dim_in]``, the normalised language token before the projector)."""
        cfg = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        b, s, r, dim = special.shape
        language = self.param("language_token", nn.initializers.truncated_normal(0.02), (1, 1, dim), self.param_dtype)
        x = layer_norm(1e-5, self.dtype, self.param_dtype, "token_norm")(special.astype(self.dtype))
        x = jnp.concatenate([jnp.broadcast_to(language.astype(self.dtype), (b, 1, dim)), x.reshape(b, s * r, dim)], 1)
        self.sow("intermediates", "readout_in", x)
        mask = None
        if frame_mask is not None:
            mask = jnp.concatenate([jnp.ones((b, 1), bool), jnp.repeat(frame_mask, r, axis=1)], axis=1)
        x = special_token_trunk(
            self, "readout_blocks", cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.init_values, x, mask
        )
        self.sow("intermediates", "readout_out", x)
        token = layer_norm(1e-5, self.dtype, self.param_dtype, "language_token_norm")(x[:, 0])
        e = nn.Dense(dim // 2, name="embedding_projector_0", **kw)(token)
        e = layer_norm(1e-5, self.dtype, self.param_dtype, "embedding_projector_2")(gelu(e))
        e = nn.Dense(dim, name="embedding_projector_3", **kw)(e)
        self.sow("intermediates", "embedding_unnormalised", e)
        norm = jnp.linalg.norm(e, axis=-1, keepdims=True)
        return e / jnp.maximum(norm, 1e-12), token
