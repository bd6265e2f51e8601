"""PyTorch-exact image resampling: antialiased bicubic (DINOv2 position embedding) and align_corners bilinear (DPT).

Both reproduce PyTorch CPU's ``F.interpolate`` arithmetic, not just its maths, because the position embedding is
interpolated in float32 even in float64 parity runs, and a 1-ULP float32 difference there shows up downstream.

What PyTorch's AVX2/AVX512 CPU kernels compute for ``mode="bicubic", antialias=True`` (``UpSampleKernel.cpp``,
``separable_upsample_generic_Nd_kernel_impl``), established against torch 2.13 bit for bit:

* Two separable passes, width (the contiguous NCHW axis) first, then height; a pass whose size is unchanged is
  skipped. The intermediate is rounded to the input dtype.
* Per axis and output index, in the input dtype: ``scale = in / out``, ``support = 2 * max(scale, 1)``,
  ``center = scale * (i + 0.5)``, taps ``[xmin, xmin + xsize)`` with ``xmin = max(int(center - support + 0.5), 0)``,
  weights ``keys((j + xmin - center + 0.5) / max(scale, 1))`` (Keys cubic, a = -0.5) normalised by their sum.
* GCC builds these kernels with ``-ffp-contract=fast``, so every Horner step of the cubic is a fused multiply-add,
  and the tap loop ``acc = x0 * w0; acc += xj * wj`` is vectorised in blocks of 4 taps (rounded products, added in
  order) with the remaining ``(xsize - 1) % 4`` taps fused (``acc = fma(xj, wj, acc)``). PyTorch's non-AVX
  ("default") kernels fuse nothing, so bit-exactness holds against its AVX2/AVX512 kernels (any x86-64 CPU with
  AVX2; other architectures are untested).

XLA's CPU backend contracts multiply-adds into FMAs whenever its fusion emitter happens to see them together, so a
float32 implementation cannot pin down which taps are fused. With x64 enabled, float32 inputs are therefore resampled
by emulating float32 in float64, where products of float32 values are exact (immune to contraction), sums rounded
twice are still correctly rounded (53 >= 2 * 24 + 2), and fused taps are rounded once via round-to-odd. Without x64
the float32 path is plain float32 arithmetic in PyTorch's order (within a few ULP). Float64 inputs use plain float64
arithmetic in PyTorch's order (round-off agreement: XLA may fuse differently).
"""

from __future__ import annotations

import functools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# GCC vectorises PyTorch's tap loop 4 taps at a time; only the leftover taps get fused multiply-adds.
_TORCH_TAP_BLOCK = 4


def _round_exact(value: Fraction, dtype: type[np.floating]) -> np.floating:
    """``value`` rounded to nearest-even in ``dtype`` (float32 via float64 could round twice)."""
    nearest = dtype(float(value))  # float() of a Fraction is correctly rounded to float64
    if dtype is np.float64:
        return nearest
    neighbours = (nearest, np.nextafter(nearest, dtype(np.inf)), np.nextafter(nearest, dtype(-np.inf)))
    return min(neighbours, key=lambda c: (abs(Fraction(float(c)) - value), int(c.view(np.uint32)) & 1))


def _fma(a: np.floating, b: np.floating, c: np.floating, dtype: type[np.floating]) -> np.floating:
    return _round_exact(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)), dtype)


def _keys_cubic(x: np.floating, dtype: type[np.floating]) -> np.floating:
    """PyTorch's antialias bicubic filter as GCC compiles it: each Horner step is one fused multiply-add."""
    a = dtype(-0.5)
    x = abs(x)
    if x < 1.0:  # ((a + 2) x - (a + 3)) x x + 1
        return _fma(_fma(a + 2, x, -(a + 3), dtype) * x, x, dtype(1), dtype)
    if x < 2.0:  # ((a x - 5a) x + 8a) x - 4a
        return _fma(_fma(_fma(a, x, -5 * a, dtype), x, 8 * a, dtype), x, -4 * a, dtype)
    return dtype(0)


@functools.cache
def _bicubic_aa_taps(n_in: int, n_out: int, dtype_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather indices ``[n_out, K]``, weights ``[n_out, K]`` and whether each tap is fused (``[n_out, K]``).

    Padding taps (beyond PyTorch's ``xsize``) have weight 0 and a clamped index: adding ``x * 0`` leaves the sum.
    Literals are float64 in the C++ source, so mixed expressions are evaluated in float64 and then rounded.
    """
    dt = np.dtype(dtype_name).type
    scale = dt(n_in) / dt(n_out)
    support = dt(2.0 * float(scale)) if scale >= 1.0 else dt(2.0)
    invscale = dt(1.0 / float(scale)) if scale >= 1.0 else dt(1.0)
    taps = int(np.ceil(support)) * 2 + 1
    index = np.zeros((n_out, taps), np.int32)  # int32 whether or not x64 is on: sizes are small
    weights = np.zeros((n_out, taps), dt)
    fused = np.zeros((n_out, taps), bool)
    for i in range(n_out):
        center = dt(float(scale) * (i + 0.5))
        lo = max(int(float(center - support) + 0.5), 0)
        size = min(max(min(int(float(center + support) + 0.5), n_in) - lo, 0), taps)
        w = [_keys_cubic(dt((float(dt(j + lo) - center) + 0.5) * float(invscale)), dt) for j in range(size)]
        total = dt(0)
        for v in w:
            total = dt(total + v)
        if total != 0:
            w = [dt(v / total) for v in w]
        index[i] = np.minimum(lo + np.arange(taps), n_in - 1)
        weights[i, :size] = w
        fused[i, 1 + (size - 1) // _TORCH_TAP_BLOCK * _TORCH_TAP_BLOCK : size] = True
    return index, weights, fused


def _to_f32(x: jax.Array) -> jax.Array:
    """Round float64 to the nearest float32, kept in float64."""
    return x.astype(jnp.float32).astype(jnp.float64)


def _round_to_odd(s: jax.Array, err: jax.Array) -> jax.Array:
    """Given ``s = RN(v)`` and the exact ``err = v - s``, the float64 next to ``v`` with an odd last bit when ``v``
    is inexact, so that a later rounding to float32 equals rounding ``v`` itself (Boldo & Melquiond)."""
    bits = lax.bitcast_convert_type(s, jnp.int64)
    away_from_zero = (err > 0) == (s > 0)  # s != 0 whenever err != 0: a sum that rounds to zero is exact
    stepped = lax.bitcast_convert_type(bits + jnp.where(away_from_zero, 1, -1).astype(jnp.int64), jnp.float64)
    return jnp.where((err != 0) & ((bits & 1) == 0), stepped, s)


def _bicubic_pass(x: jax.Array, axis: int, taps: tuple[np.ndarray, np.ndarray, np.ndarray], emulate: bool) -> jax.Array:
    """One separable pass along ``axis`` (negative); tap by tap in PyTorch's order so XLA cannot reassociate."""
    index, weights, fused = taps
    bshape = (-1,) + (1,) * (-axis - 1)

    def tap(j: int) -> tuple[jax.Array, jax.Array]:
        return jnp.take(x, index[:, j], axis=axis, mode="clip"), jnp.asarray(weights[:, j].reshape(bshape), x.dtype)

    xj, wj = tap(0)
    if not emulate:
        acc = xj * wj
        for j in range(1, index.shape[1]):
            xj, wj = tap(j)
            acc = acc + xj * wj
        return acc
    acc = _to_f32(xj * wj)  # x holds float32 values: the float64 product is exact, one rounding
    for j in range(1, index.shape[1]):
        xj, wj = tap(j)
        prod = xj * wj
        blocked = _to_f32(acc + _to_f32(prod))
        if fused[:, j].any():
            s = acc + prod  # TwoSum; its products are exact, so an XLA-inserted FMA changes nothing
            s_minus_acc = s - acc
            err = (acc - (s - s_minus_acc)) + (prod - s_minus_acc)
            one_rounding = _to_f32(_round_to_odd(s, err))
            blocked = jnp.where(jnp.asarray(fused[:, j].reshape(bshape)), one_rounding, blocked)
        acc = blocked
    return acc


def _bicubic(x: jax.Array, out_hw: tuple[int, int], emulate: bool) -> jax.Array:
    (h, w), (h_out, w_out) = x.shape[-3:-1], out_hw
    dtype_name = "float32" if emulate else np.dtype(x.dtype).name
    if w_out != w:
        x = _bicubic_pass(x, -2, _bicubic_aa_taps(w, w_out, dtype_name), emulate)
    if h_out != h:
        x = _bicubic_pass(x, -3, _bicubic_aa_taps(h, h_out, dtype_name), emulate)
    return x


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _bicubic_exact(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    return _bicubic(x.astype(jnp.float64), out_hw, emulate=True).astype(jnp.float32)


@_bicubic_exact.defjvp
def _bicubic_exact_jvp(out_hw, primals, tangents):
    # The map is linear: its derivative is the same resampling, and rounding subtleties do not matter there.
    (x,), (dx,) = primals, tangents
    return _bicubic_exact(x, out_hw), _bicubic(dx, out_hw, emulate=False)


def resize_bicubic_antialias(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """x: [..., H, W, C] channels-last -> [..., h_out, w_out, C], same dtype as x; reproduces PyTorch CPU's
    F.interpolate(mode='bicubic', antialias=True, align_corners=False) arithmetic in x's dtype.

    float32 is bit-exact with PyTorch's AVX2/AVX512 kernels when x64 is enabled (see the module docstring), float64
    agrees to round-off. Other dtypes are computed in float32. Unlike PyTorch (whose vertical pass reuses the first
    row's weights for every row when ``w_out == 1`` and the height changes), ``w_out == 1`` is resampled correctly.
    """
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    if x.dtype == jnp.float32 and jax.config.read("jax_enable_x64"):
        return _bicubic_exact(x, out_hw)
    compute = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    return _bicubic(x.astype(compute), out_hw, emulate=False).astype(x.dtype)


@functools.cache
def _linear_align_corners_taps(n_in: int, n_out: int, dtype_name: str) -> tuple[np.ndarray, ...]:
    """PyTorch's ``compute_source_index_and_lambda`` (align_corners=True): ``i0, i1, l0, l1``, each ``[n_out]``."""
    dt = np.dtype(dtype_name).type
    dst = np.arange(n_out, dtype=np.int32)  # int32 whether or not x64 is on: sizes are small
    if n_out == n_in:  # PyTorch's "scale_factor = 1, simply copy" branch
        return dst, dst, np.ones(n_out, dt), np.zeros(n_out, dt)
    scale = dt(n_in - 1) / dt(n_out - 1) if n_out > 1 else dt(0)
    real = scale * dst.astype(dt)
    i0 = np.minimum(np.floor(real.astype(np.float32)).astype(np.int32), n_in - 1)  # floorf, even for double
    l1 = np.clip(real - i0.astype(dt), dt(0), dt(1))
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, dt(1) - l1, l1


def resize_bilinear_align_corners(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """x: [..., H, W, C] -> [..., h_out, w_out, C] like PyTorch's bilinear interpolate with align_corners=True.

    Gathers the two source rows and columns of every output pixel (no dense interpolation matrices) and combines
    them in the association of the PyTorch CPU kernel that an NCHW input takes (``UpSampleKernel.cpp``):

    * ``h_out + w_out > 128``, the generic kernel: ``(x00 w0 + x01 w1) h0 + (x10 w0 + x11 w1) h1``;
    * otherwise the channels-last kernel, with premultiplied weights ``wij = hi * wj``:
      ``x00 w00 + (x01 w01 + (x11 w11 + x10 w10))`` (its SIMD body; PyTorch sums the channels left over by the
      SIMD width, e.g. C = 3, left to right).

    GCC fuses the first product of each sum into an FMA, and so does XLA's CPU backend when it contracts (which it
    does in contiguous fusions, but does not promise); that is why the C++ order is mirrored term by term. Measured
    against torch 2.13 under jit: bit-exact in float32 and float64 for both kernels (C a multiple of the SIMD
    width); the guarantee is round-off level.
    """
    (h, w), (h_out, w_out) = x.shape[-3:-1], (int(out_hw[0]), int(out_hw[1]))
    compute = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    dtype_name, out_dtype = np.dtype(compute).name, x.dtype
    hi0, hi1, hl0, hl1 = _linear_align_corners_taps(h, h_out, dtype_name)
    wi0, wi1, wl0, wl1 = _linear_align_corners_taps(w, w_out, dtype_name)
    x = x.astype(compute)
    rows = [jnp.take(x, i, axis=-3, mode="clip") for i in (hi0, hi1)]
    x00, x01, x10, x11 = (jnp.take(r, i, axis=-2, mode="clip") for r in rows for i in (wi0, wi1))
    if h_out + w_out > 128:
        w0, w1 = (jnp.asarray(v[:, None], compute) for v in (wl0, wl1))
        h0, h1 = (jnp.asarray(v[:, None, None], compute) for v in (hl0, hl1))
        out = (x00 * w0 + x01 * w1) * h0 + (x10 * w0 + x11 * w1) * h1
    else:
        w00, w01, w10, w11 = (jnp.asarray(np.outer(a, b)[..., None], compute) for a in (hl0, hl1) for b in (wl0, wl1))
        out = x00 * w00 + (x01 * w01 + (x11 * w11 + x10 * w10))
    return out.astype(out_dtype)
