"""Pose encoding ``absT_quaR_FoV`` against geometry.npz and by round trips, in numpy and jax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.geometry import extri_intri_to_pose_encoding, pose_encoding_to_extri_intri, quat_to_mat


def _hw(array) -> tuple[int, int]:
    return int(array[0]), int(array[1])


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_fixture(geo, backend):
    """Bit-exact where upstream rounds to float32 (the encoding, the intrinsics); measured max abs error of the
    float64 extrinsics 0 (numpy) and 4.4e-16 (jax): 1e-15 is a few ULPs of entries <= 1."""
    hw_e, hw_p = _hw(geo["e2p__image_size_hw"]), _hw(geo["p2e__image_size_hw"])
    with jax.enable_x64(True):
        xnp = np if backend == "numpy" else jnp
        encode = lambda e, k: extri_intri_to_pose_encoding(e, k, hw_e, xnp=xnp)
        decode = lambda p: pose_encoding_to_extri_intri(p, hw_p, xnp=xnp)
        if backend == "jax":
            encode, decode = jax.jit(encode), jax.jit(decode)
        arr = lambda k: xnp.asarray(geo[k])
        encoding = encode(arr("e2p__extrinsics"), arr("e2p__intrinsics"))
        assert encoding.dtype == np.float32  # upstream's .float()
        np.testing.assert_array_equal(encoding, geo["e2p__pose_encoding"])

        extrinsics, intrinsics = decode(arr("p2e__pose_encoding"))
        assert extrinsics.dtype == np.float64 and intrinsics.dtype == np.float32
        np.testing.assert_allclose(extrinsics, geo["p2e__extrinsics"], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(intrinsics, geo["p2e__intrinsics"])

        extrinsics, intrinsics = decode(xnp.asarray(geo["e2p__pose_encoding"], dtype=xnp.float64))
        np.testing.assert_allclose(extrinsics, geo["roundtrip__extrinsics"], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(intrinsics, geo["roundtrip__intrinsics"])


def random_cameras(n: int, hw: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rotation = quat_to_mat(rng.standard_normal((n, 4)))
    extrinsics = np.concatenate([rotation, rng.normal(0, 2, (n, 3, 1))], axis=-1)
    focal = rng.uniform(200, 800, (n, 2))
    intrinsics = np.zeros((n, 3, 3))
    intrinsics[:, 0, 0], intrinsics[:, 1, 1] = focal[:, 0], focal[:, 1]
    intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 2, 2] = hw[1] / 2, hw[0] / 2, 1.0
    return extrinsics, intrinsics


def test_round_trip_float64():
    hw = (294, 518)
    extrinsics, intrinsics = random_cameras(64, hw)
    encoding = extri_intri_to_pose_encoding(extrinsics, intrinsics, hw, float32_output=False)
    assert encoding.dtype == np.float64 and encoding.shape == (64, 9)
    assert np.all(encoding[:, 6] >= 0)
    back_e, back_k = pose_encoding_to_extri_intri(encoding, hw, float32_intrinsics=False)
    np.testing.assert_allclose(back_e, extrinsics, atol=1e-14)
    np.testing.assert_allclose(back_k, intrinsics, rtol=1e-13)


def test_round_trip_float32_matches_upstream_rounding():
    """With the defaults the round trip carries upstream's float32 rounding: ~1e-7 relative."""
    hw = (392, 518)
    extrinsics, intrinsics = random_cameras(16, hw, seed=1)
    back_e, back_k = pose_encoding_to_extri_intri(extri_intri_to_pose_encoding(extrinsics, intrinsics, hw), hw)
    np.testing.assert_allclose(back_e, extrinsics, atol=2e-6)  # translations up to ~6 in float32
    np.testing.assert_allclose(back_k, intrinsics, rtol=1e-6)


def test_build_intrinsics_false_and_errors():
    encoding = np.zeros((2, 3, 9))
    encoding[..., 6] = 1.0
    extrinsics, intrinsics = pose_encoding_to_extri_intri(encoding, build_intrinsics=False)
    assert intrinsics is None and extrinsics.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(extrinsics[..., :3], np.broadcast_to(np.eye(3), (2, 3, 3, 3)))
    with pytest.raises(ValueError, match="image_size_hw"):
        pose_encoding_to_extri_intri(encoding)
    with pytest.raises(NotImplementedError):
        pose_encoding_to_extri_intri(encoding, (14, 14), pose_encoding_type="relT_quaR_FoV")


def test_float32_inputs_stay_float32_in_jax():
    """Without x64 the whole path is float32 (no silent float64 from the Python image size)."""
    hw = (112, 154)
    extrinsics, intrinsics = random_cameras(3, hw, seed=2)
    encoding = extri_intri_to_pose_encoding(
        jnp.asarray(extrinsics, jnp.float32), jnp.asarray(intrinsics, jnp.float32), hw, xnp=jnp
    )
    back_e, back_k = pose_encoding_to_extri_intri(encoding, hw, xnp=jnp)
    assert encoding.dtype == back_e.dtype == back_k.dtype == jnp.float32
