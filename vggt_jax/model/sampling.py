"""Bilinear sampling at pixel coordinates, with PyTorch ``F.grid_sample(align_corners=True)`` numerics.

Upstream's tracker samples through ``bilinear_sampler`` (``vggt/heads/track_modules/utils.py``): pixel coordinates
are cast to the image's dtype, normalised to [-1, 1] with ``p * (2 / max(size - 1, 1)) - 1`` and handed to
``grid_sample``, whose CPU kernel maps them back with ``(g + 1) * ((size - 1) / 2)`` and blends the four corners as
``((nw * v_nw + ne * v_ne) + sw * v_sw) + se * v_se``. The round trip is not the identity in floating point, and the
tracker is chaotic enough (shared/fixtures/README.md, "Tracker sensitivity") that the last bit matters, so it is
reproduced operation by operation here. The image is channels-last.

Fused multiply-adds decide the last bit. ATen's kernel is compiled with FMA contraction, so its corner blend is
``fma(v_se, se, fma(v_sw, sw, fma(v_ne, ne, v_nw * nw)))``, while the normalisation runs as separate tensor ops
(one rounding each). XLA:CPU contracts ``a * b + c`` inside a fusion wherever a product has no other use, and its
algebraic simplifier reassociates chains of constants; ``_rounded_here`` pins the intermediates that must stay
rounded, leaving exactly ATen's contractions. With that, jitted float32 and float64 results are bit-identical to
torch's CPU ``grid_sample`` (tests/model/test_tracker.py). Op-by-op (un-jitted) execution fuses nothing, so it has no
FMAs and differs by an ULP or so, as does a backend that contracts differently (GPU).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

PaddingMode = Literal["zeros", "border"]


def _rounded_here(x: jax.Array) -> jax.Array:
    """``x`` unchanged (a NaN stays a NaN), in a form XLA cannot see through: its algebraic simplifier would
    otherwise fold ``((p * a) - 1 + 1) * b`` into ``p * (a * b)``, and LLVM would contract a product into an FMA with
    the add that follows. Upstream rounds after each of these tensor ops, so each result is pinned here."""
    return jnp.where(jnp.isnan(x), jnp.asarray(jnp.nan, x.dtype), x)


def _unnormalised(p: jax.Array, size: int, padding_mode: PaddingMode) -> jax.Array:
    """Pixel coordinate -> the source coordinate grid_sample interpolates at, both in ``p.dtype``."""
    dtype = p.dtype
    # bilinear_sampler builds its scale as a tensor of the coordinates' dtype from a Python double.
    scale = jnp.asarray(np.asarray(2.0 / max(size - 1, 1), dtype=dtype))
    g = _rounded_here(_rounded_here(p * scale) - jnp.asarray(1, dtype))
    # ATen's vectorised CPU kernel: scaling_factor = scalar_t(size - 1) / 2, unnormalize = (g + 1) * scaling_factor.
    half = jnp.asarray(np.asarray(size - 1, dtype=dtype) / np.asarray(2, dtype=dtype))
    x = (g + jnp.asarray(1, dtype)) * half
    if padding_mode == "border":
        x = jnp.minimum(jnp.asarray(size - 1, dtype), jnp.maximum(x, jnp.asarray(0, dtype)))
    elif padding_mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' or 'border', got {padding_mode!r}")
    return x


def bilinear_sample(image: jax.Array, coords: jax.Array, padding_mode: PaddingMode = "zeros") -> jax.Array:
    """Sample ``image`` bilinearly at pixel coordinates, as upstream's ``bilinear_sampler(align_corners=True)``.

    Args:
      image: [B, H, W, C] channels-last.
      coords: [B, ..., 2] pixel (x, y), 0 = centre of the first pixel, W - 1 = centre of the last. Cast to
        ``image.dtype`` first, as upstream does, so the weights are computed in the image's precision.
      padding_mode: "zeros" (corners outside the image contribute 0) or "border" (coordinates are clamped to
        the image first).

    Returns:
      [B, ..., C] in ``image.dtype``. Differentiable with respect to ``image`` and ``coords`` (upstream detaches
      the coordinates; callers that mirror it apply ``lax.stop_gradient``).
    """
    b, h, w, c = image.shape
    if coords.shape[0] != b or coords.shape[-1] != 2:
        raise ValueError(f"coords must be [B={b}, ..., 2], got {coords.shape}")
    dtype = image.dtype
    points_shape = coords.shape[1:-1]
    coords = coords.astype(dtype).reshape(b, -1, 2)
    x = _unnormalised(coords[..., 0], w, padding_mode)
    y = _unnormalised(coords[..., 1], h, padding_mode)

    x_w = jnp.floor(x)
    y_n = jnp.floor(y)
    wt_w = x - x_w
    wt_e = jnp.asarray(1, dtype) - wt_w
    wt_n = y - y_n
    wt_s = jnp.asarray(1, dtype) - wt_n
    # Clamp in float before the integer cast so far-away points cannot overflow int32; -2 keeps the east/south
    # neighbour (-1) of a far-left point outside too.
    ix_w = jnp.clip(x_w, -2, w).astype(jnp.int32)
    iy_n = jnp.clip(y_n, -2, h).astype(jnp.int32)
    # Per axis: the clamped index of each neighbour and whether it lies inside the image (else it reads zero).
    cols = [(jnp.clip(i, 0, w - 1), (i >= 0) & (i < w)) for i in (ix_w, ix_w + 1)]
    rows = [(jnp.clip(i, 0, h - 1) * w, (i >= 0) & (i < h)) for i in (iy_n, iy_n + 1)]
    flat = image.reshape(b, h * w, c)
    gather = jax.vmap(lambda im, i: im.at[i].get(mode="promise_in_bounds"))

    def corner(row: int, col: int) -> jax.Array:
        (offset, row_inside), (index, col_inside) = rows[row], cols[col]
        values = gather(flat, offset + index)
        return jnp.where((row_inside & col_inside)[..., None], values, jnp.zeros((), dtype))

    v_nw, v_ne, v_sw, v_se = corner(0, 0), corner(0, 1), corner(1, 0), corner(1, 1)
    # ATen's weights and sum order. Pinning the first product leaves exactly one contractible product in each add,
    # so the FMAs are the ones ATen has whatever operand order LLVM canonicalises to.
    out = _rounded_here(v_nw * (wt_s * wt_e)[..., None])
    out = out + v_ne * (wt_s * wt_w)[..., None]
    out = out + v_sw * (wt_n * wt_e)[..., None]
    out = out + v_se * (wt_n * wt_w)[..., None]
    return out.reshape((b, *points_shape, c))
