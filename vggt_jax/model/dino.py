"""The aggregator's patch embedder: DINOv2 with register tokens (VGGT, ``vggt/layers/vision_transformer.py``) or
DINOv3 with storage tokens and axial RoPE (VGGT-Omega, ``vggt_omega/models/layers/vision_transformer.py``).

Only ``x_norm_patchtokens`` is computed, which is all either model reads. Images are channels-last ``[N, H, W, 3]``,
already ImageNet-normalised. The two differ only in how position enters (a learned embedding, resized to the grid,
or RoPE on the patch tokens of every block), the masked k-bias and the LayerNorm eps, all config fields.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vggt_jax.config import DinoConfig
from vggt_jax.model.layers import block_class, layer_norm
from vggt_jax.model.resample import resize_bicubic_antialias
from vggt_jax.model.rope import axial_rope

Dtype = Any


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch convolution -> ``[N, P, C]`` tokens, row-major over the patch grid."""

    embed_dim: int
    patch_size: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.patch_size
        x = nn.Conv(
            self.embed_dim,
            (p, p),
            strides=(p, p),
            padding="VALID",
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="proj",
        )(x)
        return x.reshape(x.shape[0], -1, self.embed_dim)


class DinoVisionTransformer(nn.Module):
    config: DinoConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: str = "none"
    # The blocks' parameter layout (``AggregatorConfig.scan_layers``): unrolled ``blocks_{i}`` or stacked ``blocks``.
    scan_layers: bool = False

    def interpolate_pos_encoding(self, pos_embed: jax.Array, grid_hw: tuple[int, int]) -> jax.Array:
        """``pos_embed [1, 1 + M*M, C]`` -> ``[1, 1 + h*w, C]`` for an h x w patch grid.

        Upstream returns it unchanged only for the square native grid; otherwise the patch part is resized with
        antialiased bicubic in float32 (``pos_embed.float()``) whatever the model dtype, then cast back.
        """
        m = self.config.grid_size
        if grid_hw == (m, m):
            return pos_embed.astype(self.dtype)
        cls_pos, patch_pos = pos_embed[:, :1], pos_embed[0, 1:]
        patch_pos = resize_bicubic_antialias(patch_pos.astype(jnp.float32).reshape(m, m, -1), grid_hw)
        patch_pos = patch_pos.reshape(1, -1, patch_pos.shape[-1])
        return jnp.concatenate([cls_pos.astype(jnp.float32), patch_pos], axis=1).astype(self.dtype)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [N, H, W, 3]`` -> ``x_norm_patchtokens [N, (H/p)(W/p), C]``."""
        cfg = self.config
        c, m, r = cfg.embed_dim, cfg.grid_size, cfg.num_register_tokens
        init = nn.initializers.normal(1e-6)
        cls_token = self.param("cls_token", init, (1, 1, c), self.param_dtype)
        if not cfg.rope_base:
            pos_embed = self.param("pos_embed", nn.initializers.normal(0.02), (1, m * m + 1, c), self.param_dtype)
        # DINOv3's storage tokens take this place and name (the converter renames ``storage_tokens``).
        register_tokens = self.param("register_tokens", init, (1, r, c), self.param_dtype) if r else None
        # Frozen and unused at inference (masked-image training only), but part of the official state dict.
        self.param("mask_token", nn.initializers.zeros, (1, c), self.param_dtype)

        n, height, width, _ = x.shape
        grid_hw = (height // cfg.patch_size, width // cfg.patch_size)
        x = PatchEmbed(c, cfg.patch_size, self.dtype, self.param_dtype, name="patch_embed")(x)
        x = jnp.concatenate([jnp.broadcast_to(cls_token.astype(self.dtype), (n, 1, c)), x], axis=1)
        rope = None
        if cfg.rope_base:
            # DINOv3 builds its table in float32 (float64 after upstream's ``.double()``) and rotates q and k in it.
            table_dtype = jnp.float64 if self.dtype == jnp.float64 else jnp.float32
            rope = axial_rope(*grid_hw, c // cfg.num_heads, cfg.rope_base, 1 + r, table_dtype)
        else:
            x = x + self.interpolate_pos_encoding(pos_embed, grid_hw)
        if register_tokens is not None:
            regs = jnp.broadcast_to(register_tokens.astype(self.dtype), (n, r, c))
            x = jnp.concatenate([x[:, :1], regs, x[:, 1:]], axis=1)
        block = lambda name: block_class(self.remat)(  # noqa: E731
            c,
            cfg.num_heads,
            cfg.mlp_ratio,
            init_values=cfg.init_values,
            norm_eps=cfg.layernorm_eps,
            mask_k_bias=cfg.mask_k_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )
        if self.scan_layers:
            # One block under nn.scan, its parameters stacked on a leading layer axis (``blocks/...`` [depth, ...]).
            scan = nn.scan(
                lambda module, x, _: (module(x, rope), None),
                variable_axes={"params": 0, "intermediates": 0},
                split_rngs={"params": True},
                length=cfg.depth,
                check_constancy_invariants=False,  # as the aggregator's scan (vggt_jax.model.aggregator)
            )
            x, _ = scan(block("blocks"), x, None)
        else:
            for i in range(cfg.depth):
                x = block(f"blocks_{i}")(x, rope)
        x = layer_norm(cfg.layernorm_eps, self.dtype, self.param_dtype, "norm")(x)
        return x[:, 1 + r :]
