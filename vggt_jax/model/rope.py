"""2D rotary position embedding tables (``vggt/layers/rope.py``) as static numpy constants.

Upstream computes ``inv_freq = 1 / base ** (arange(0, d, 2) / d)`` and ``angles = position * inv_freq`` in
float32 and only then casts to the compute dtype and takes cos/sin there. PyTorch's float32 ``pow`` is correctly
rounded for these arguments and numpy's ``float32 **`` is not (it differs by one ULP for 3 of the 16 frequencies
at d = 32, base 100), so the power is taken in float64 and rounded once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def inv_freq(dim: int, base: float) -> np.ndarray:
    """``[dim / 2]`` float32 inverse frequencies for one axis (``dim`` = head_dim / 2)."""
    exponents = np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)
    power = (np.float64(base) ** exponents.astype(np.float64)).astype(np.float32)
    return np.float32(1.0) / power


def token_positions(grid_h: int, grid_w: int, num_special: int) -> np.ndarray:
    """``[num_special + grid_h * grid_w, 2]`` int (y, x): special tokens at (0, 0), patches row-major at +1."""
    yy, xx = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    patches = np.stack([yy.ravel(), xx.ravel()], axis=-1) + 1
    return np.concatenate([np.zeros((num_special, 2), np.int64), patches], axis=0)


def rope_angles(positions: np.ndarray, head_dim: int, base: float) -> np.ndarray:
    """``positions [N, 2]`` -> float32 angles ``[N, 2, head_dim / 2]`` (y then x), each ``cat([a, a])``."""
    freqs = inv_freq(head_dim // 2, base)
    angles = positions.astype(np.float32)[..., None] * freqs  # float32 product, as upstream's einsum
    return np.concatenate([angles, angles], axis=-1)


def rope_tables(positions: np.ndarray, head_dim: int, base: float, dtype) -> tuple[jax.Array, jax.Array]:
    """(cos, sin) ``[N, 2, head_dim / 2]`` in ``dtype``: angles rounded in float32, cos/sin taken in ``dtype``."""
    angles = jnp.asarray(rope_angles(positions, head_dim, base)).astype(dtype)
    return jnp.cos(angles), jnp.sin(angles)
