"""The transformer MLP over row chunks (``mlp_rows_scope``): the same rows, parameters and gradients as all at
once, through a scan over chunks."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import get_config
from vggt_jax.model.aggregator import Aggregator
from vggt_jax.model.layers import Mlp, mlp_rows_scope, row_chunks


@pytest.mark.parametrize(
    "rows, target, expected",
    [
        (4096, 1024, (4, 1024)),  # exact
        (6280, 1024, (8, 785)),  # 8 frames x 785 tokens: the divisor, no padding
        (1000, 1024, (1, 1000)),
        (1031, 512, (3, 344)),  # a prime: equal chunks, the last one padded
    ],
)
def test_row_chunks(rows, target, expected):
    steps, chunk = row_chunks(rows, target)
    assert (steps, chunk) == expected
    assert steps * chunk >= rows > (steps - 1) * chunk


def _mlp_and_params():
    mlp = Mlp(hidden_features=32, out_features=8, dtype=jnp.float64, param_dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(0), (2, 37, 8), jnp.float64)
    return mlp, mlp.init(jax.random.key(1), x), x


@pytest.mark.parametrize("rows", [37, 25])  # 74 rows: a divisor (2 x 37) and padded chunks (3 x 25)
def test_chunked_mlp_equals_all_rows(rows):
    with jax.enable_x64(True):
        mlp, params, x = _mlp_and_params()
        assert set(params["params"]) == {"fc1", "fc2"}
        whole = mlp.apply(params, x)
        with mlp_rows_scope(rows):
            jaxpr = jax.make_jaxpr(mlp.apply)(params, x)
            chunked = mlp.apply(params, x)
            grads = jax.grad(lambda p: jnp.sum(mlp.apply(p, x) ** 2))(params)
        assert "scan" in str(jaxpr)
        np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13)
        ref = jax.grad(lambda p: jnp.sum(mlp.apply(p, x) ** 2))(params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12), grads, ref)


def test_mlp_rows_scope_rejects_negative():
    with pytest.raises(ValueError, match="mlp_rows_chunk must be >= 0"):
        with mlp_rows_scope(-1):
            pass


def test_aggregator_chunks_its_mlps():
    """The aggregator enters its own row chunk: a micro model over 2 frames of 56x56 (2 x 21 tokens) in chunks of
    8 rows scans every MLP and returns the tokens of the all-at-once run."""
    with jax.enable_x64(True):
        cfg = get_config("micro").aggregator
        images = jax.random.uniform(jax.random.key(0), (1, 2, 3, 56, 56), jnp.float64)
        run = lambda c: Aggregator(c, jnp.float64, jnp.float64)  # noqa: E731
        params = run(cfg).init(jax.random.key(1), images)
        apply = lambda c: lambda p: run(c).apply(p, images)[0]  # noqa: E731
        whole_cfg, chunked_cfg = (dataclasses.replace(cfg, mlp_rows_chunk=n) for n in (0, 8))
        scans = [str(jax.make_jaxpr(apply(c))(params)).count("scan[") for c in (whole_cfg, chunked_cfg)]
        assert scans[1] > scans[0]
        whole, chunked = apply(whole_cfg)(params), apply(chunked_cfg)(params)
        assert whole.keys() == chunked.keys()
        for k in whole:
            np.testing.assert_allclose(chunked[k], whole[k], rtol=1e-12, atol=1e-12)
