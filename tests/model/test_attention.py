"""The attention kernels: chunked online-softmax and splash attention equal the reference softmax attention, masks
included; the model's choice of kernel and frame-chunked heads do not change its outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import micro
from vggt_jax.model.attention import (
    AttentionConfig,
    attention_scope,
    chunked_attention,
    dot_product_attention,
    select_implementation,
    splash_attention,
    xla_attention,
)
from vggt_jax.model.random_init import random_params
from vggt_jax.model.vggt import VGGT


def qkv(b, nq, nk, h, d, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((b, n, h, d)).astype(dtype) for n in (nq, nk, nk))
    # Keys of the masked tests are a random half; row 0 of batch 0 keeps one key so no row is fully masked.
    mask = rng.random((b, nk)) < 0.5
    mask[:, 0] = True
    return q, k, v, mask


@pytest.mark.parametrize(
    "shape, chunks",
    [
        ((2, 300, 300, 4, 16), dict(q_chunk=128, kv_chunk=100)),  # 3 x 100 q tiles, 3 key tiles: online softmax
        ((1, 1041, 1041, 2, 8), dict(q_chunk=256, kv_chunk=512)),  # the 1B frame length: 3 x 347 queries and keys
        ((3, 77, 130, 2, 8), dict(q_chunk=50, kv_chunk=1000, batch_chunk=3)),  # one key tile; padded q tiles
        ((4, 20, 37, 2, 8), dict(q_chunk=7, kv_chunk=8, batch_chunk=2)),  # padded key tiles (37 is prime), groups
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_chunked_equals_reference_float64(shape, chunks, masked):
    q, k, v, mask = qkv(*shape)
    mask = mask if masked else None
    with jax.enable_x64(True):
        ref = xla_attention(q, k, v, mask)
        out = jax.jit(lambda *a: chunked_attention(*a, **chunks))(q, k, v, mask)
    # The same sums in another order: float64 round-off (measured <= 4e-16).
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "shape, chunks",
    [
        ((2, 300, 300, 4, 16), dict(q_chunk=128, kv_chunk=100)),
        ((3, 77, 130, 2, 8), dict(q_chunk=50, kv_chunk=1000, batch_chunk=3)),
        ((4, 20, 37, 2, 8), dict(q_chunk=7, kv_chunk=8, batch_chunk=2)),
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_chunked_gradient_equals_reference_float64(shape, chunks, masked):
    """The flash backward (custom_vjp) against automatic differentiation of the reference: dq, dk and dv."""
    q, k, v, mask = qkv(*shape, seed=1)
    mask = mask if masked else None
    w = np.random.default_rng(2).standard_normal(q.shape)
    with jax.enable_x64(True):
        ref = jax.grad(lambda *a: jnp.sum(xla_attention(*a, mask) * w), argnums=(0, 1, 2))(q, k, v)
        out = jax.jit(jax.grad(lambda *a: jnp.sum(chunked_attention(*a, mask, **chunks) * w), argnums=(0, 1, 2)))(
            q, k, v
        )
    for name, a, b in zip("qkv", out, ref, strict=True):
        # Measured <= 8e-16 relative to the largest entry.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14 * np.abs(b).max(), err_msg=f"d{name}")


def test_chunked_gradient_memory_is_linear_in_sequence():
    """Training memory: the backward recomputes each tile's probabilities from one log-sum-exp per row, so XLA's
    temporary buffers for the gradient at 4096 tokens stay far below one [H, N, N] float32 attention matrix (268 MB
    here; differentiating the loops instead measured 635 MB)."""
    n, h, d = 4096, 4, 16
    spec = jax.ShapeDtypeStruct((1, n, h, d), jnp.float32)

    def loss(q, k, v):
        return jnp.sum(chunked_attention(q, k, v, q_chunk=256, kv_chunk=512))

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(spec, spec, spec).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < h * n * n * 4 / 8, temp  # measured: 11 MB


def test_masked_gradient_memory_is_linear_under_remat_in_a_scan():
    """The training layout: rematerialised blocks under a scan over layers, global attention with a key mask. The
    kernel's loops are while loops, so remat's partial evaluation cannot split off their mask-only part and keep
    every tile's broadcast mask (a bool attention matrix per layer): doubling the sequence doubles the memory.
    With ``fori_loop`` (a scan for static bounds) this measured 45.8 -> 158 MB, 3.4x."""
    b, h, d, layers = 2, 4, 16, 4

    def temp(n):
        def loss(w, x, mask):
            @jax.checkpoint
            def block(x, wl):
                q = x @ wl
                return x + chunked_attention(q, q, x, mask, q_chunk=128, kv_chunk=256), None

            return jnp.sum(jax.lax.scan(block, x, w)[0])

        args = (
            jax.ShapeDtypeStruct((layers, d, d), jnp.float32),
            jax.ShapeDtypeStruct((b, n, h, d), jnp.float32),
            jax.ShapeDtypeStruct((b, n), jnp.bool_),
        )
        return jax.jit(jax.grad(loss)).lower(*args).compile().memory_analysis().temp_size_in_bytes

    small, large = temp(2048), temp(4096)
    assert large < 2.25 * small, (small, large)  # measured 16.0 -> 32.0 MB


def test_chunked_runs_per_device_on_a_training_mesh():
    """Under a (data, fsdp, tensor) mesh with the training rules the tiled kernel runs in ``shard_map`` on each
    device's scenes and heads: no all-gather (XLA cannot split its loops, and gathered every scene onto every device),
    and the value and gradients equal one device's."""
    from vggt_jax.train import sharding as sh

    q, k, v, mask = qkv(8, 300, 300, 4, 16, seed=3, dtype=np.float32)
    config = AttentionConfig("chunked", q_chunk=128, kv_chunk=128)

    def loss(q, k, v, mask):
        return jnp.sum(jnp.sin(dot_product_attention(q, k, v, mask, config)))

    step = jax.value_and_grad(loss, argnums=(0, 1, 2))
    ref = jax.jit(step)(q, k, v, mask)
    mesh = sh.make_mesh(2, 2, 2)
    with jax.set_mesh(mesh), sh.logical_axis_rules():
        args = [jax.device_put(x, sh.batch_sharding(mesh, x.ndim)) for x in (q, k, v, mask)]
        compiled = jax.jit(step).lower(*args).compile()
        out = compiled(*args)
    assert "all-gather" not in compiled.as_text()
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-6)  # a sum over devices in another order
    for name, a, b in zip("qkv", out[1], ref[1], strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"d{name}")


def test_chunked_float32_and_bfloat16():
    q, k, v, mask = qkv(2, 300, 300, 4, 32, dtype=np.float32)
    ref = xla_attention(q, k, v, mask)
    out = chunked_attention(q, k, v, mask, q_chunk=128, kv_chunk=256)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)  # float32 round-off of a 300-term weighted sum
    qb, kb, vb = (jnp.asarray(x, jnp.bfloat16) for x in (q, k, v))
    out_bf16 = chunked_attention(qb, kb, vb, mask, q_chunk=128, kv_chunk=256)
    ref_bf16 = xla_attention(qb, kb, vb, mask)
    assert out_bf16.dtype == jnp.bfloat16
    # bf16 inputs, float32 softmax and accumulation in both: they differ by bf16 rounding of the weights.
    np.testing.assert_allclose(np.asarray(out_bf16, np.float32), np.asarray(ref_bf16, np.float32), atol=2e-2)


def test_masked_keys_weigh_exactly_zero():
    q, k, v, mask = qkv(2, 40, 64, 2, 8)
    with jax.enable_x64(True):
        out = chunked_attention(q, k, v, mask, q_chunk=16, kv_chunk=16)
        # Replacing the masked keys and values by garbage changes nothing.
        k2 = np.where(mask[..., None, None], k, 1e3)
        v2 = np.where(mask[..., None, None], v, -1e3)
        out2 = chunked_attention(q, k2, v2, mask, q_chunk=16, kv_chunk=16)
    np.testing.assert_array_equal(out, out2)


def test_fully_masked_rows_stay_finite():
    q, k, v, _ = qkv(1, 10, 20, 2, 8, dtype=np.float32)
    out = chunked_attention(q, k, v, np.zeros((1, 20), bool), q_chunk=4, kv_chunk=8)
    assert np.isfinite(np.asarray(out)).all()


def test_splash_interpret_equals_reference():
    q, k, v, mask = qkv(2, 200, 150, 2, 64, dtype=np.float32)
    ref = xla_attention(q, k, v, mask)
    out = splash_attention(q, k, v, mask, interpret=True)
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)


def test_scope_and_auto_selection():
    q, k, v, _ = qkv(1, 8, 8, 1, 4, dtype=np.float32)
    assert select_implementation(jnp.zeros((1, 93, 6, 64)), jnp.zeros((1, 93, 6, 64))) == "xla"
    assert select_implementation(jnp.zeros((1, 1041, 16, 64)), jnp.zeros((1, 1041, 16, 64))) == "chunked"
    with attention_scope(AttentionConfig("chunked", q_chunk=3, kv_chunk=5)):
        scoped = dot_product_attention(q, k, v)
    np.testing.assert_allclose(scoped, xla_attention(q, k, v), atol=1e-6)
    with pytest.raises(ValueError, match="unknown attention implementation"):
        AttentionConfig("flash")


def test_model_kernels_and_frame_chunked_heads_float64():
    """The micro model (every component of VGGT) with chunked attention over small tiles and heads run one frame
    at a time equals the reference kernel with heads over all frames at once."""
    cfg = micro().replace(dtype="float64", head_dtype="float64", param_dtype="float64")
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(1, 3, 3, 56, 70))
    queries = rng.uniform(size=(1, 5, 2)) * [69, 55]
    with jax.enable_x64(True):
        params = random_params(VGGT(cfg), images, queries)
        ref = jax.jit(VGGT(cfg.replace(attention="xla", heads_frames_chunk=0)).apply)(params, images, queries)
        cfg_chunked = cfg.replace(attention="chunked", attention_q_chunk=7, attention_kv_chunk=9, heads_frames_chunk=1)
        out = jax.jit(VGGT(cfg_chunked).apply)(params, images, queries)
    assert set(out) == set(ref)
    for name in ref:
        # float64 round-off; the tracker's iterations amplify it a little (test_padding.py uses the same bounds).
        atol = 1e-9 if name in ("track", "track_list") else 1e-12
        np.testing.assert_allclose(out[name], ref[name], rtol=0, atol=atol, err_msg=name)
