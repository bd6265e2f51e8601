"""Camera head (``vggt/heads/camera_head.py``): AdaLN-modulated iterative refinement of the pose encoding."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vggt_jax.config import CameraHeadConfig
from vggt_jax.model.activations import activate_pose
from vggt_jax.model.layers import Block, Mlp, layer_norm

Dtype = Any
POSE_DIM = 9  # absT_quaR_FoV: [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]


class CameraHead(nn.Module):
    config: CameraHeadConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, frame_mask: jax.Array | None = None) -> jax.Array:
        """``tokens``: last aggregator layer ``[B, S, T, dim_in]`` -> pose encodings ``[iterations, B, S, 9]``.
        ``frame_mask``: [B, S] bool, False for padding frames, which the trunk's attention then ignores."""
        cfg = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        dim = cfg.dim_in
        trunk = [
            Block(dim, cfg.num_heads, cfg.mlp_ratio, init_values=cfg.init_values, name=f"trunk_{i}", **kw)
            for i in range(cfg.trunk_depth)
        ]
        token_norm = layer_norm(1e-5, self.dtype, self.param_dtype, "token_norm")
        trunk_norm = layer_norm(1e-5, self.dtype, self.param_dtype, "trunk_norm")
        empty_pose_tokens = self.param("empty_pose_tokens", nn.initializers.zeros, (1, 1, POSE_DIM), self.param_dtype)
        embed_pose = nn.Dense(dim, name="embed_pose", **kw)
        modulation = nn.Dense(3 * dim, name="poseLN_modulation_1", **kw)
        adaln_norm = layer_norm(1e-6, self.dtype, self.param_dtype, "adaln_norm", use_scale=False)
        pose_branch = Mlp(dim // 2, POSE_DIM, name="pose_branch", **kw)

        pose_tokens = token_norm(tokens[:, :, 0].astype(self.dtype))
        b, s, _ = pose_tokens.shape
        normed = adaln_norm(pose_tokens)
        pred, preds = None, []
        for _ in range(cfg.num_iterations):
            if pred is None:
                inp = embed_pose(jnp.broadcast_to(empty_pose_tokens.astype(self.dtype), (b, s, POSE_DIM)))
            else:
                # Each iteration refines the previous estimate without back-propagating through it.
                inp = embed_pose(jax.lax.stop_gradient(pred))
            shift, scale, gate = jnp.split(modulation(nn.silu(inp)), 3, axis=-1)
            x = gate * (normed * (1 + scale) + shift) + pose_tokens
            for blk in trunk:
                x = blk(x, key_mask=frame_mask)
            delta = pose_branch(trunk_norm(x))
            pred = delta if pred is None else pred + delta
            preds.append(activate_pose(pred, cfg.trans_act, cfg.quat_act, cfg.fl_act))
        return jnp.stack(preds)
