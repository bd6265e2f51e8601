"""``vggt_jax.model.resample`` against PyTorch's CPU ``F.interpolate`` (bicubic antialias, bilinear align_corners)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.model.resample import resize_bicubic_antialias, resize_bilinear_align_corners

torch = pytest.importorskip("torch")
F = torch.nn.functional

# Bit-exactness is with PyTorch's FMA kernels; its non-AVX ("default") kernels round differently.
TORCH_FMA = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
BICUBIC = dict(mode="bicubic", antialias=True, align_corners=False)
BILINEAR = dict(mode="bilinear", align_corners=True)
# Down- and up-sampling, each axis independently, identity axes, and the DINOv2 37x37 grid to 1x1.
BICUBIC_SIZES = [(8, 11), (28, 37), (37, 45), (10, 10), (21, 37), (50, 74), (1, 1)]


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _torch(x: np.ndarray, size: tuple[int, int], **kwargs) -> np.ndarray:
    return F.interpolate(_nchw(x), size=size, **kwargs).numpy().transpose(0, 2, 3, 1)


def _grid(dtype: type, std: float, shape: tuple[int, ...] = (1, 37, 37, 16), seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * std).astype(dtype)


@pytest.mark.parametrize("std", [0.02, 1.0])
def test_bicubic_float32_matches_torch_bit_for_bit_with_x64(std):
    x = _grid(np.float32, std)
    with jax.enable_x64(True):
        resize = jax.jit(resize_bicubic_antialias, static_argnums=1)
        for size in BICUBIC_SIZES:
            ours, ref = np.asarray(resize(jnp.asarray(x), size)), _torch(x, size, **BICUBIC)
            assert ours.dtype == np.float32 and ours.shape == ref.shape
            if TORCH_FMA:
                np.testing.assert_array_equal(ours, ref, err_msg=str(size))
            else:
                np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6 * std, err_msg=str(size))


def test_bicubic_float32_without_x64_is_within_a_few_ulp():
    # Plain float32: XLA fuses multiply-adds that PyTorch rounds separately (and vice versa); measured 7.5e-7 * std.
    x = _grid(np.float32, 1.0)
    with jax.enable_x64(False):
        resize = jax.jit(resize_bicubic_antialias, static_argnums=1)
        for size in BICUBIC_SIZES:
            ours = np.asarray(resize(jnp.asarray(x), size))
            assert ours.dtype == np.float32
            np.testing.assert_allclose(ours, _torch(x, size, **BICUBIC), rtol=0, atol=2e-6, err_msg=str(size))


def test_bicubic_float64_matches_torch_to_round_off():
    x = _grid(np.float64, 1.0)
    with jax.enable_x64(True):
        resize = jax.jit(resize_bicubic_antialias, static_argnums=1)
        for size in BICUBIC_SIZES:
            ours = np.asarray(resize(jnp.asarray(x), size))
            assert ours.dtype == np.float64
            # Weights are exact; the tap sums differ by where XLA and GCC fuse multiply-adds (measured 1.4e-15).
            np.testing.assert_allclose(ours, _torch(x, size, **BICUBIC), rtol=0, atol=1e-14, err_msg=str(size))


def test_bicubic_output_width_one_is_not_torchs_bug():
    # PyTorch's vertical pass reuses row 0's weights when w_out == 1; ours matches the transposed problem instead.
    x = _grid(np.float32, 1.0)
    ours = np.asarray(resize_bicubic_antialias(jnp.asarray(x), (4, 1)))
    transposed = _torch(x.transpose(0, 2, 1, 3), (1, 4), **BICUBIC).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(ours, transposed, rtol=0, atol=1e-6)


# (in, out): PyTorch takes its generic kernel when h_out + w_out > 128 and its channels-last one otherwise.
BILINEAR_CASES = [
    ((37, 37), (74, 74)),
    ((37, 28), (74, 56)),
    ((50, 50), (200, 190)),
    ((8, 8), (16, 16)),
    ((16, 12), (56, 42)),
    ((12, 9), (7, 5)),
    ((20, 30), (1, 1)),
    ((1, 1), (4, 5)),
]


@pytest.mark.parametrize("dtype,atol", [(np.float32, 2e-6), (np.float64, 1e-14)])
def test_bilinear_align_corners_matches_torch(dtype, atol):
    # Bit-exact today (XLA contracts the same multiply-adds GCC does); the bound is round-off, as fusion may change.
    with jax.enable_x64(True):
        resize = jax.jit(resize_bilinear_align_corners, static_argnums=1)
        for (h, w), size in BILINEAR_CASES:
            x = _grid(dtype, 1.0, (2, h, w, 16))
            ours, ref = np.asarray(resize(jnp.asarray(x), size)), _torch(x, size, **BILINEAR)
            assert ours.dtype == dtype and ours.shape == ref.shape
            np.testing.assert_allclose(ours, ref, rtol=0, atol=atol, err_msg=f"{(h, w)} -> {size}")


@pytest.mark.parametrize("x64", [True, False])
@pytest.mark.parametrize(
    "fn,size,kwargs",
    [(resize_bicubic_antialias, (28, 45), BICUBIC), (resize_bilinear_align_corners, (74, 60), BILINEAR)],
    ids=["bicubic", "bilinear"],
)
def test_jit_grad_matches_torch_autograd(x64, fn, size, kwargs):
    x, cot = _grid(np.float32, 1.0, (1, 37, 37, 8)), _grid(np.float32, 1.0, (1, *size, 8), seed=1)
    with jax.enable_x64(x64):
        grad = np.asarray(jax.jit(jax.grad(lambda v: jnp.sum(fn(v, size) * cot)))(jnp.asarray(x)))
    xt = _nchw(x).requires_grad_()
    (F.interpolate(xt, size=size, **kwargs) * _nchw(cot)).sum().backward()
    np.testing.assert_allclose(grad, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-5)
