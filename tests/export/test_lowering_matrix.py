"""The lowering matrix (vggt_jax.export.matrix): both 1B families lowered for cuda and tpu and checked, and the
checks themselves, each shown to fail when the thing it guards is broken on purpose."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.export import matrix
from vggt_jax.model import attention


def test_matrix_lowers_and_passes_every_check():
    """Every case of the matrix (42: forwards, frame-sharded, train steps) in its own process, as CI runs it: the
    train step needs 16 virtual devices, which the CLI asks for before jax starts."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    run = subprocess.run(
        [sys.executable, "-m", "vggt_jax.export.matrix"], capture_output=True, text=True, timeout=900, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [
        line
        for line in run.stdout.splitlines()
        if line.startswith("| forward") or line.startswith("| sharded") or line.startswith("| train")
    ]
    assert len(rows) == len(matrix.cases()) == 42 and all(row.endswith("| ok |") for row in rows)
    # auto's choices, named: cuDNN on cuda in bf16, splash on tpu, the plain kernels for float32 on cuda.
    table = {row.split("|")[1].strip(): row for row in rows}
    assert "__cudnn$fmhaSoftmax" in table["forward vggt_1b cuda auto bfloat16"]
    assert "tpu_custom_call" in table["forward vggt_omega_1b tpu auto float32"]
    assert "cudnn" not in table["forward vggt_1b cuda auto float32"]
    assert "all_gather" in table["sharded vggt_1b tpu auto bfloat16 gather"]
    assert "collective_permute" in table["sharded vggt_omega_1b cuda auto bfloat16 ring"]


def test_a_splash_case_without_its_mosaic_call_fails(monkeypatch):
    monkeypatch.setattr(
        attention, "splash_attention", lambda q, k, v, mask=None: attention.chunked_attention(q, k, v, mask)
    )
    result = matrix.lower_forward(matrix.Case("forward", "tiny", "tpu", "splash", "bfloat16"))
    problems = matrix.check(result)
    assert any("no splash custom call" in p for p in problems), problems


def test_a_float32_matmul_outside_the_policy_fails(monkeypatch):
    """The reference attention made to upcast its queries and keys (a kernel that silently computes in float32):
    the aggregator's attention logits are named by module path."""
    reference = attention.xla_attention

    def upcast(q, k, v, mask=None):
        return reference(q.astype(jnp.float32), k.astype(jnp.float32), v, mask).astype(q.dtype)

    monkeypatch.setattr(attention, "xla_attention", upcast)
    result = matrix.lower_forward(matrix.Case("forward", "tiny", "cuda", "xla", "bfloat16"))
    problems = matrix.check(result)
    assert any("outside the precision policy" in p and "aggregator" in p for p in problems), problems
    monkeypatch.undo()
    assert matrix.check(matrix.lower_forward(matrix.Case("forward", "tiny", "cuda", "xla", "bfloat16"))) == []


def test_cudnn_call_masks_by_key_lengths_and_pads_odd_lengths():
    """The cuDNN call's arguments (prefix key mask as key lengths, odd lengths padded by one) through XLA's kernel:
    equal to the reference with the boolean mask."""
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(0)
        q, k, v = (rng.standard_normal((2, n, 3, 8)) for n in (7, 9, 9))
        mask = np.arange(9)[None] < np.array([[9], [5]])
        for m in (None, mask):
            got = attention.cudnn_attention(q, k, v, m, implementation="xla")
            # jax.nn.dot_product_attention takes its softmax in float32 whatever the inputs: float32 round-off.
            np.testing.assert_allclose(got, attention.xla_attention(q, k, v, m), atol=1e-6)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_cudnn_falls_back_for_float32_and_auto_follows_the_target_platform():
    q = jnp.zeros((1, 16, 2, 64), jnp.bfloat16)
    with attention.record_kernels() as kernels:
        for platform in ("cuda", "tpu", "cpu"):
            with attention.platform_scope(platform):
                attention.select_implementation(q, q)
                kernels.append(attention.select_implementation(q, q))
        attention.dot_product_attention(q.astype(jnp.float32), q, q, config=attention.AttentionConfig("cudnn"))
    assert kernels == ["cudnn", "splash", "xla", "xla"]
    with pytest.raises(ValueError, match="unknown platform"):
        with attention.platform_scope("metal"):
            pass
