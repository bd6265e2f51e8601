"""Rotary position embeddings as static numpy tables, and ``Rope``, which applies one to queries or keys.

Two kinds. VGGT's 2D RoPE (``vggt/layers/rope.py``) rotates every token by its integer (y, x) patch position.
VGGT-Omega's axial RoPE (DINOv3's ``RopePositionEmbedding``, used by its backbone and its frame blocks) rotates only
the patch tokens, by coordinates normalised to [-1, 1] by the longer side of the grid.

VGGT's tables:

Upstream computes ``inv_freq = 1 / base ** (arange(0, d, 2) / d)`` and ``angles = position * inv_freq`` in
float32 and only then casts to the compute dtype and takes cos/sin there. PyTorch's float32 ``pow`` is correctly
rounded for these arguments and numpy's ``float32 **`` is not (it differs by one ULP for 3 of the 16 frequencies
at d = 32, base 100), so the power is taken in float64 and rounded once.
"""

from __future__ import annotations

from typing import Any

import flax.struct
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


def apply_rope_2d(t: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """VGGT's 2D rotary embedding of ``t: [B, N, H, D]``: the first D/2 features rotate with the row (y) angle, the
    last D/2 with the column (x) angle; within each half, rotate_half pairs feature i with i + D/4 (half-split
    layout, not interleaved). ``cos, sin: [N, 2, D/2]`` hold the per-token (y, x) tables already duplicated as
    ``cat([angles, angles])``."""
    d = t.shape[-1] // 2
    out = []
    for axis in range(2):
        part = t[..., axis * d : (axis + 1) * d]
        rotated = jnp.concatenate([-part[..., d // 2 :], part[..., : d // 2]], axis=-1)
        c = cos[None, :, None, axis, :]
        s = sin[None, :, None, axis, :]
        out.append(part * c + rotated * s)
    return jnp.concatenate(out, axis=-1)


def axial_periods(head_dim: int, base: float) -> np.ndarray:
    """DINOv3's float32 ``periods`` buffer ``[head_dim / 4]``: ``base ** (2i / (head_dim / 2))`` (it equals float32
    of the float64 formula, shared/fixtures/omega/README.md)."""
    quarter = head_dim // 4
    return (np.float64(base) ** (2.0 * np.arange(quarter) / (head_dim / 2))).astype(np.float32)


def axial_rope_angles(grid_h: int, grid_w: int, head_dim: int, base: float, dtype) -> np.ndarray:
    """DINOv3's angles ``[h * w, head_dim]`` in ``dtype`` (float32, or float64 after upstream's ``.double()``),
    patches row-major, laid out ``[y (D/4), x (D/4), y, x]``.

    The exact dtype path of upstream: coordinates ``(i + 0.5) / max(h, w)``, ``2c - 1`` and ``2 pi u`` (2 pi rounded
    to float32) in float32; the division by the float32 ``periods`` in ``dtype``. The shorter side is not centred."""
    longest = np.float32(max(grid_h, grid_w))
    ys = (np.arange(grid_h, dtype=np.float32) + np.float32(0.5)) / longest
    xs = (np.arange(grid_w, dtype=np.float32) + np.float32(0.5)) / longest
    coords = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    coords = np.float32(2.0) * coords - np.float32(1.0)
    scaled = np.float32(2 * np.pi) * coords  # [P, 2] float32
    periods = axial_periods(head_dim, base)
    angles = scaled.astype(dtype)[:, :, None] / periods.astype(dtype)[None, None, :]
    angles = angles.reshape(len(coords), -1)
    return np.concatenate([angles, angles], axis=-1)


def axial_rope_tables(grid_h: int, grid_w: int, head_dim: int, base: float, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) ``[h * w, head_dim]`` of ``axial_rope_angles``, taken in ``dtype`` (numpy)."""
    angles = axial_rope_angles(grid_h, grid_w, head_dim, base, dtype)
    return np.cos(angles), np.sin(angles)


@flax.struct.dataclass
class Rope:
    """A rotary embedding for one attention call, applied to q and k ``[B, N, H, D]`` (after q/k-norm).

    ``layout="vggt"``: ``apply_rope_2d`` with tables ``[N, 2, D/2]`` covering every token. ``layout="axial"``:
    DINOv3's ``x cos + rotate_half(x) sin`` with tables ``[P, D]`` for the last P tokens; the first ``prefix``
    tokens (cls / storage, camera / registers) are not rotated. Upstream casts q and k of *all* tokens to the
    tables' dtype, rotates, and casts back (in a float64 run with float32 tables this rounds q and k to float32;
    under bf16 the rotation runs in float32)."""

    cos: jax.Array
    sin: jax.Array
    layout: str = flax.struct.field(pytree_node=False, default="vggt")
    prefix: int = flax.struct.field(pytree_node=False, default=0)

    def __call__(self, t: jax.Array) -> jax.Array:
        if self.layout == "vggt":
            return apply_rope_2d(t, self.cos, self.sin)
        dtype = t.dtype
        x = t.astype(self.cos.dtype)
        head, tail = x[:, : self.prefix], x[:, self.prefix :]
        d = x.shape[-1] // 2
        rotated = jnp.concatenate([-tail[..., d:], tail[..., :d]], axis=-1)
        cos, sin = self.cos[None, :, None], self.sin[None, :, None]
        if dtype == jnp.float64 and x.dtype == jnp.float32:
            # Float64 run, float32 rotation (upstream's island): torch rounds each product and the sum to float32,
            # where XLA:CPU would contract them into an FMA (one rounding; a float32 ULP apart in ~25% of the
            # values). Each product of two float32 numbers is exact in float64, so rounding it to float32 is
            # torch's float32 multiply; the convert between them keeps XLA from fusing the add.
            product = lambda a, b: (a.astype(dtype) * b.astype(dtype)).astype(x.dtype)  # noqa: E731
            tail = product(tail, cos) + product(rotated, sin)
        else:
            tail = tail * cos + rotated * sin
        return jnp.concatenate([head, tail], axis=1).astype(dtype)

    def tile(self, n: int) -> Rope:
        """The tables of ``n`` concatenated sequences (VGGT's global attention reuses each frame's positions)."""
        if self.layout != "vggt":
            raise ValueError("only VGGT's RoPE applies across frames")
        return Rope(jnp.tile(self.cos, (n, 1, 1)), jnp.tile(self.sin, (n, 1, 1)))


def axial_rope(
    grid_h: int, grid_w: int, head_dim: int, base: float, prefix: int, dtype: Any, table_dtype: Any = None
) -> Rope:
    """DINOv3's RoPE for an h x w patch grid after ``prefix`` unrotated tokens, computed in ``dtype`` and rounded to
    ``table_dtype`` (default ``dtype``): VGGT-Omega's aggregator computes its table in the run's dtype and casts it
    to float32."""
    cos, sin = axial_rope_tables(grid_h, grid_w, head_dim, base, np.dtype(dtype))
    table_dtype = np.dtype(table_dtype or dtype)
    return Rope(
        jnp.asarray(cos.astype(table_dtype)), jnp.asarray(sin.astype(table_dtype)), layout="axial", prefix=prefix
    )
