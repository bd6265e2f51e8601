"""Rotations against geometry.npz (upstream ``vggt/utils/rotation.py``) and by invariants, in numpy and jax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.geometry import mat_to_quat, quat_to_mat, quat_xyzw_to_wxyz, standardize_quaternion

# Measured: numpy 1.1e-16 and jax 1.1e-16 on mat_to_quat (one exactly-180-degree case, last-bit differences in the
# candidate division), quat_to_mat 0 (numpy) / 4.4e-16 (jax). 1e-15 is a few float64 ULPs of values <= 1.
F64_ATOL = 1e-15
# Measured: 14 of 180 float32 quaternion components differ by one or two float32 ULPs (1.2e-7) from torch's.
F32_ATOL = 2.5e-7


def random_rotations(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal((n, 4))
    return quat_to_mat(q)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_fixture_float64(geo, backend):
    with jax.enable_x64(True):
        if backend == "numpy":
            quat, mats, roundtrip = (
                mat_to_quat(geo["m2q__R"]),
                quat_to_mat(geo["q2m__quat"]),
                mat_to_quat(geo["q2m__R"]),
            )
        else:
            m2q = jax.jit(lambda r: mat_to_quat(r, xnp=jnp))
            quat, roundtrip = m2q(jnp.asarray(geo["m2q__R"])), m2q(jnp.asarray(geo["q2m__R"]))
            mats = jax.jit(lambda q: quat_to_mat(q, xnp=jnp))(jnp.asarray(geo["q2m__quat"]))
        assert quat.dtype == np.float64 and mats.dtype == np.float64
        np.testing.assert_allclose(quat, geo["m2q__quat"], rtol=0, atol=F64_ATOL)
        np.testing.assert_allclose(mats, geo["q2m__R"], rtol=0, atol=F64_ATOL)
        np.testing.assert_allclose(roundtrip, geo["q2m__roundtrip_quat"], rtol=0, atol=F64_ATOL)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_fixture_float32(geo, backend):
    xnp = np if backend == "numpy" else jnp
    quat = mat_to_quat(xnp.asarray(geo["m2q__R_f32"]), xnp=xnp)
    assert quat.dtype == np.float32
    np.testing.assert_allclose(quat, geo["m2q__quat_f32"], rtol=0, atol=F32_ATOL)


def test_half_turns_are_standardised(geo):
    """The exact and near 180-degree cases: unit norm, qw >= 0, and the matrix comes back."""
    rotations = geo["m2q__R"]
    quat = mat_to_quat(rotations)
    assert np.all(quat[:, 3] >= 0)
    np.testing.assert_allclose(np.linalg.norm(quat, axis=-1), 1.0, atol=1e-15)
    np.testing.assert_allclose(quat_to_mat(quat), rotations, atol=1e-15)


def test_round_trip_random_rotations():
    rotations = random_rotations(500)
    np.testing.assert_allclose(
        rotations @ np.swapaxes(rotations, -1, -2), np.broadcast_to(np.eye(3), (500, 3, 3)), atol=1e-15
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-14)
    np.testing.assert_allclose(quat_to_mat(mat_to_quat(rotations)), rotations, atol=1e-15)


def test_quat_to_mat_is_scale_and_sign_invariant():
    q = np.random.default_rng(1).standard_normal((50, 4))
    np.testing.assert_allclose(quat_to_mat(3.7 * q), quat_to_mat(q), atol=1e-15)
    np.testing.assert_allclose(quat_to_mat(-q), quat_to_mat(q), atol=1e-15)
    unit = standardize_quaternion(q / np.linalg.norm(q, axis=-1, keepdims=True))
    np.testing.assert_allclose(mat_to_quat(quat_to_mat(q)), unit, atol=1e-15)


def test_jax_gradient_is_finite_at_half_turns(geo):
    """The square root of the degenerate candidates must not put NaNs into gradients (used in training losses)."""
    grad = jax.grad(lambda r: mat_to_quat(r, xnp=jnp).sum())(jnp.asarray(geo["m2q__R_f32"]))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_leading_batch_shape_and_wxyz():
    rotations = random_rotations(6).reshape(2, 3, 3, 3)
    quat = mat_to_quat(rotations)
    assert quat.shape == (2, 3, 4)
    wxyz = quat_xyzw_to_wxyz(quat)
    np.testing.assert_array_equal(wxyz[..., 0], quat[..., 3])
    np.testing.assert_array_equal(wxyz[..., 1:], quat[..., :3])
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 3\]"):
        mat_to_quat(np.zeros((2, 3, 4)))
