"""The point tracker (``vggt/heads/track_modules/base_track_predictor.py::BaseTrackerPredictor``, CoTracker style).

Feature maps are channels-last ``[B, S, H, W, C]`` (the DPT feature extractor's output); points are pixel (x, y) of
the feature map after dividing by ``stride``. Each iteration samples a correlation pyramid around the current
estimates, runs the ``EfficientUpdateFormer`` over all tracks and frames, and updates coordinates and features.

Float32 islands (shared/fixtures/README.md, "Float32 islands inside the float64 run"): upstream keeps the flow
embedding and the sampled 2D sin/cos position embedding in float32 even when the model runs in float64, and the
tracker amplifies their rounding 10-100x per iteration, so both are reproduced here with explicit float32.

Coordinates, correlations and embeddings are computed in ``promote_types(dtype, float32)``: a bfloat16 model runs
its dense and attention layers in bfloat16 but never rounds pixel coordinates to 8 bits (as under torch autocast,
which keeps ``grid_sample`` in float32).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import TrackerConfig
from vggt_jax.model.layers import Mlp, gelu, layer_norm
from vggt_jax.model.sampling import bilinear_sample
from vggt_jax.model.update_former import EfficientUpdateFormer

Dtype = Any

# nn.Linear's default init, U(+-1/sqrt(fan_in)), for the layers upstream leaves at their defaults.
_torch_linear_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def get_2d_embedding(xy: jax.Array, channels: int) -> jax.Array:
    """Sin/cos embedding of 2D offsets (upstream ``get_2d_embedding(xy, C, cat_coords=False)``).

    Args:
      xy: [..., 2] (x, y), any float dtype.
      channels: C, even; frequencies ``arange(0, C, 2) * (1000 / C)`` (float32).

    Returns:
      [..., 2C] float32: ``[sin(x f0), cos(x f0), sin(x f1), ...]`` for x, then the same for y. The products and
      sin/cos are taken in ``xy``'s precision (at least float32) and then rounded to float32, as upstream writes
      them into float32 tensors.
    """
    div_term = np.arange(0, channels, 2, dtype=np.float32) * np.float32(1000.0 / channels)
    compute = jnp.promote_types(xy.dtype, jnp.float32)
    angles = xy.astype(compute)[..., None] * jnp.asarray(div_term, compute)  # [..., 2, C/2]
    pe = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).astype(jnp.float32)  # [..., 2, C/2, 2]
    return pe.reshape(*xy.shape[:-1], 2 * channels)


def sincos_1d_table(dim: int, length: int) -> np.ndarray:
    """[length, dim] float32: ``[sin(p w), cos(p w)]`` at p = 0..length-1, w_k = 10000^(-k / (dim/2)),
    computed in float64 and rounded, as upstream's ``get_1d_sincos_pos_embed_from_grid``."""
    if dim % 2:
        raise ValueError(f"sin/cos embedding dim must be even, got {dim}")
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.arange(length, dtype=np.float32).astype(np.float64)[:, None] * omega[None]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1).astype(np.float32)


def get_2d_sincos_pos_embed(dim: int, grid_hw: tuple[int, int]) -> np.ndarray:
    """[H, W, dim] float32 (upstream's ``get_2d_sincos_pos_embed``, channels-last): the first dim/2 channels
    embed the column x, the last dim/2 the row y."""
    h, w = grid_hw
    ex = sincos_1d_table(dim // 2, w)
    ey = sincos_1d_table(dim // 2, h)
    return np.concatenate(
        [np.broadcast_to(ex[None], (h, w, dim // 2)), np.broadcast_to(ey[:, None], (h, w, dim // 2))], axis=-1
    )


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """``F.avg_pool2d(kernel_size=2, stride=2)`` (floor mode) of ``x: [..., H, W, C]`` -> ``[..., H/2, W/2, C]``.

    ATen sums the window row by row, then divides by 4."""
    h, w = x.shape[-3] // 2, x.shape[-2] // 2
    x = x[..., : 2 * h, : 2 * w, :]
    total = x[..., 0::2, 0::2, :] + x[..., 0::2, 1::2, :]
    total = total + x[..., 1::2, 0::2, :]
    total = total + x[..., 1::2, 1::2, :]
    return total / jnp.asarray(4, x.dtype)


def corr_pyramid(fmaps: jax.Array, num_levels: int) -> list[jax.Array]:
    """``CorrBlock``'s pyramid: ``fmaps [B, S, H, W, C]`` and ``num_levels - 1`` successive 2x2 average pools."""
    pyramid = [fmaps]
    for _ in range(num_levels - 1):
        pyramid.append(avg_pool_2x2(pyramid[-1]))
    return pyramid


def corr_sample(pyramid: list[jax.Array], targets: jax.Array, coords: jax.Array, radius: int) -> jax.Array:
    """``CorrBlock.corr_sample``: correlate each track's feature with every pixel of each level, then sample the
    correlation bilinearly (zero padding) on a (2r+1)^2 window around the track.

    Args:
      pyramid: levels [B, S, H_l, W_l, C].
      targets: [B, S, N, C] track features.
      coords: [B, S, N, 2] pixel (x, y) at level 0.

    Returns:
      [B, S, N, levels * (2r+1)^2]. Within a level, window entry (i, j) adds offset i - r to x and j - r to y
      (upstream stacks its ``meshgrid(dy, dx)`` as (x, y) offsets; both axes span the same range).
    """
    b, s, n, _ = targets.shape
    d = 2 * radius + 1
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    delta = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(d * d, 2)
    out = []
    for level, fmaps in enumerate(pyramid):
        h, w, c = fmaps.shape[-3:]
        corrs = jnp.einsum("bsnc,bshwc->bsnhw", targets.astype(fmaps.dtype), fmaps)
        corrs = corrs / jnp.asarray(math.sqrt(c), corrs.dtype)
        window = (coords / jnp.asarray(2**level, coords.dtype))[..., None, :] + jnp.asarray(delta, coords.dtype)
        sampled = bilinear_sample(corrs.reshape(b * s * n, h, w, 1), window.reshape(b * s * n, d * d, 2), "zeros")
        out.append(sampled.reshape(b, s, n, d * d))
    return jnp.concatenate(out, axis=-1)


class BaseTrackerPredictor(nn.Module):
    """Iterative point tracker over feature maps (``config`` mirrors upstream's constructor)."""

    config: TrackerConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        query_points: jax.Array,
        fmaps: jax.Array,
        iters: int = 6,
        down_ratio: int = 1,
        apply_sigmoid: bool = True,
        frame_mask: jax.Array | None = None,
        point_mask: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """Track ``query_points`` (in frame 0) through all frames.

        Args:
          query_points: [B, N, 2] pixel (x, y) of the image the features were extracted from.
          fmaps: [B, S, H, W, C] channels-last, C = ``latent_dim``.
          iters: refinement iterations.
          down_ratio: extra downsampling of the features relative to the queries (upstream's argument).
          apply_sigmoid: False returns vis/conf logits (for training with a logit loss).
          frame_mask, point_mask: [B, S] and [B, N] bool, False for padding frames / query points (shape
            buckets); the real tracks do not depend on the padding.

        Returns:
          ``coords [iters, B, S, N, 2]`` pixel (x, y) after each iteration (frame 0 is the query),
          ``vis [B, S, N]`` and ``conf [B, S, N]`` (None unless ``predict_conf``).
        """
        cfg = self.config
        dt = self.dtype
        cdt = jnp.promote_types(dt, jnp.float32)  # geometry precision (module docstring)
        kw = dict(dtype=dt, param_dtype=self.param_dtype)
        b, n, _ = query_points.shape
        _, s, hh, ww, c = fmaps.shape
        latent = cfg.latent_dim
        if c != latent:
            raise ValueError(f"fmaps have {c} channels but the tracker's latent_dim is {latent}")
        transformer_dim = 3 * latent + 4

        corr_mlp = Mlp(cfg.hidden_size, latent, name="corr_mlp", **kw)
        updateformer = EfficientUpdateFormer(
            space_depth=cfg.depth if cfg.use_spaceatt else 0,
            time_depth=cfg.depth,
            input_dim=transformer_dim,
            hidden_size=cfg.hidden_size,
            num_heads=cfg.num_heads,
            output_dim=latent + 2,
            mlp_ratio=cfg.mlp_ratio,
            add_space_attn=cfg.use_spaceatt,
            num_virtual_tracks=cfg.num_virtual_tracks,
            name="updateformer",
            **kw,
        )
        ffeat_norm = nn.GroupNorm(num_groups=1, epsilon=1e-5, use_fast_variance=False, name="ffeat_norm", **kw)
        ffeat_updater = nn.Dense(latent, kernel_init=_torch_linear_init, name="ffeat_updater_0", **kw)
        query_ref_token = self.param(
            "query_ref_token", nn.initializers.normal(1.0), (1, 2, transformer_dim), self.param_dtype
        )

        fmaps = layer_norm(1e-5, dt, self.param_dtype, "fmap_norm")(fmaps.astype(dt)).astype(cdt)
        query = jax.lax.stop_gradient(query_points.astype(cdt))
        if down_ratio > 1:
            query = query / jnp.asarray(float(down_ratio), cdt)
        query = query / jnp.asarray(float(cfg.stride), cdt)
        coords = jnp.broadcast_to(query[:, None], (b, s, n, 2))

        track_feats = bilinear_sample(fmaps[:, 0], query, "border")  # [B, N, C]
        track_feats = jnp.broadcast_to(track_feats[:, None], (b, s, n, latent)).astype(dt)
        pyramid = corr_pyramid(fmaps, cfg.corr_levels)

        # Float32 island: the embedding table is float32 and bilinear_sampler casts the coordinates to it.
        half = transformer_dim // 2
        pos_grid = jnp.concatenate(
            [
                jnp.broadcast_to(jnp.asarray(sincos_1d_table(half, ww))[None], (hh, ww, half)),
                jnp.broadcast_to(jnp.asarray(sincos_1d_table(half, hh))[:, None], (hh, ww, half)),
            ],
            axis=-1,
        )
        pos_emb = bilinear_sample(jnp.broadcast_to(pos_grid[None], (b, hh, ww, transformer_dim)), query, "border")
        # Upstream adds the float32 embedding to the run-dtype input; casting up first is exact.
        pos_emb = pos_emb.astype(dt)[:, :, None, :]  # [B, N, 1, D]
        ref_token = jnp.concatenate(
            [query_ref_token[:, 0:1], jnp.broadcast_to(query_ref_token[:, 1:2], (1, s - 1, transformer_dim))], axis=1
        ).astype(dt)  # frame 0 gets token 0, the others token 1

        scale = jnp.asarray(float(cfg.stride * max(down_ratio, 1)), cdt)
        max_scale = jnp.asarray(float(cfg.max_scale), cdt)
        coord_preds = []
        for _ in range(iters):
            coords = jax.lax.stop_gradient(coords)  # upstream detaches between iterations
            fcorrs = corr_sample(pyramid, track_feats, coords, cfg.corr_radius)
            fcorrs = corr_mlp(fcorrs.transpose(0, 2, 1, 3).astype(dt))  # [B, N, S, latent]

            flows = (coords - coords[:, 0:1]).transpose(0, 2, 1, 3)  # [B, N, S, 2]
            flows_emb = get_2d_embedding(flows, latent // 2).astype(cdt)
            flows_emb = jnp.concatenate([flows_emb, flows / max_scale, flows / max_scale], axis=-1)
            feats = track_feats.transpose(0, 2, 1, 3)  # [B, N, S, latent]
            x = jnp.concatenate([flows_emb.astype(dt), fcorrs, feats], axis=-1)
            x = x + pos_emb
            x = x + ref_token

            delta = updateformer(x, frame_mask, point_mask)  # [B, N, S, latent + 2]
            delta_feats = delta[..., 2:].reshape(b * n * s, latent)
            feats = gelu(ffeat_updater(ffeat_norm(delta_feats))) + feats.reshape(b * n * s, latent)
            track_feats = feats.reshape(b, n, s, latent).transpose(0, 2, 1, 3)

            coords = coords + delta[..., :2].astype(cdt).transpose(0, 2, 1, 3)
            coords = coords.at[:, 0].set(query)  # the query frame is pinned to the query
            coord_preds.append(coords * scale)

        flat_feats = track_feats.reshape(b * s * n, latent)
        vis = nn.Dense(1, kernel_init=_torch_linear_init, name="vis_predictor_0", **kw)(flat_feats).reshape(b, s, n)
        conf = None
        if cfg.predict_conf:
            conf = nn.Dense(1, kernel_init=_torch_linear_init, name="conf_predictor_0", **kw)(flat_feats)
            conf = conf.reshape(b, s, n)
        if apply_sigmoid:
            vis = jax.nn.sigmoid(vis)
            conf = None if conf is None else jax.nn.sigmoid(conf)
        return jnp.stack(coord_preds), vis.astype(cdt), None if conf is None else conf.astype(cdt)
