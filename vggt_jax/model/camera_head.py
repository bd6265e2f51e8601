"""Camera heads: VGGT's AdaLN-modulated iterative refinement of the pose encoding (``vggt/heads/camera_head.py``)
and VGGT-Omega's single pass over the special tokens of all frames (``vggt_omega/models/heads/camera_head.py``)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vggt_jax.config import CameraHeadConfig
from vggt_jax.model.activations import activate_pose
from vggt_jax.model.layers import Block, Mlp, gelu, layer_norm

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


def special_token_trunk(
    module: nn.Module,
    name: str,
    depth: int,
    num_heads: int,
    mlp_ratio: float,
    init_values: float,
    x: jax.Array,
    key_mask: jax.Array | None,
) -> jax.Array:
    """``depth`` transformer blocks (masked k-bias, no q/k-norm, no RoPE) named ``{name}_{i}`` under ``module``, on
    ``x [B, N, C]``: VGGT-Omega's camera trunk and text readout."""
    kw = dict(dtype=module.dtype, param_dtype=module.param_dtype)
    for i in range(depth):
        # Constructed inside ``module``'s compact call, so the block is its child.
        block = Block(
            x.shape[-1], num_heads, mlp_ratio, init_values=init_values, mask_k_bias=True, name=f"{name}_{i}", **kw
        )
        x = block(x, key_mask=key_mask)
    return x


class OmegaCameraHead(nn.Module):
    """VGGT-Omega's camera head: ``token_norm`` -> trunk over the camera and register tokens of all frames ->
    camera token -> ``trunk_norm`` -> Linear, GELU, Linear -> ``[T, quat, relu(FoV) + 0.01]``. One pass, no
    refinement; the FoV is never exactly 0."""

    config: CameraHeadConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, special: jax.Array, frame_mask: jax.Array | None = None) -> jax.Array:
        """``special``: the camera and register tokens of the last aggregator layer ``[B, S, R, dim_in]`` ->
        ``pose_enc [B, S, 9]``. ``frame_mask``: [B, S] bool, False for padding frames."""
        cfg = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        b, s, r, dim = special.shape
        x = layer_norm(1e-5, self.dtype, self.param_dtype, "token_norm")(special.astype(self.dtype))
        x = x.reshape(b, s * r, dim)
        self.sow("intermediates", "trunk_in", x)
        mask = None if frame_mask is None else jnp.repeat(frame_mask, r, axis=1)
        x = special_token_trunk(self, "trunk", cfg.trunk_depth, cfg.num_heads, cfg.mlp_ratio, cfg.init_values, x, mask)
        self.sow("intermediates", "trunk_out", x)
        x = layer_norm(1e-5, self.dtype, self.param_dtype, "trunk_norm")(x.reshape(b, s, r, dim)[:, :, 0])
        self.sow("intermediates", "branch_in", x)
        raw = nn.Dense(dim // 2, name="camera_branch_0", **kw)(x)
        raw = nn.Dense(POSE_DIM, name="camera_branch_2", **kw)(gelu(raw))
        self.sow("intermediates", "pose_enc_raw", raw)
        return jnp.concatenate([raw[..., :7], jax.nn.relu(raw[..., 7:]) + 0.01], axis=-1)
