"""Rotation matrices <-> unit quaternions, for numpy and jax.numpy alike (``xnp=np`` or ``xnp=jnp``).

Conventions (those of ``vggt/utils/rotation.py``, itself PyTorch3D's algorithm):

* quaternions are **scalar-last**, ``[qx, qy, qz, qw]`` (XYZW), and ``mat_to_quat`` returns them *standardised*:
  ``qw >= 0`` (``q`` and ``-q`` are the same rotation; fixing the sign makes the pose encoding a function of R);
* matrices rotate column vectors, ``v' = R @ v``.

Both functions follow upstream's arithmetic operation for operation (the same sums in the same order, the same
best-conditioned-candidate choice), so float64 results agree with the official ones to the last bit or two,
including exactly-180-degree rotations where three of the four candidates degenerate.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any  # np.ndarray or jax.Array


def is_jax(xnp: ModuleType) -> bool:
    return xnp is jnp


def matmul(a: Array, b: Array, xnp: ModuleType = np) -> Array:
    """``a @ b`` with broadcasting; on jnp at HIGHEST precision so float32 geometry is not run through bf16 passes
    (the default on TPU and, with TF32, on GPU), which would cost ~3 significant digits in pixel coordinates."""
    if is_jax(xnp):
        return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
    return np.matmul(a, b)


def quat_to_mat(quat: Array, xnp: ModuleType = np) -> Array:
    """Quaternions ``[..., 4]`` (XYZW) -> rotation matrices ``[..., 3, 3]``.

    Uses ``2 / |q|^2`` instead of normalising first, so any non-zero scaling of ``q`` gives the same matrix (the
    camera head's raw quaternions are not unit length).
    """
    i, j, k, r = (quat[..., n] for n in range(4))
    # Upstream reduces (q * q) over the last axis; written out in the same left-to-right order.
    two_s = 2.0 / (((i * i + j * j) + k * k) + r * r)
    rows = (
        1 - two_s * (j * j + k * k),
        two_s * (i * j - k * r),
        two_s * (i * k + j * r),
        two_s * (i * j + k * r),
        1 - two_s * (i * i + k * k),
        two_s * (j * k - i * r),
        two_s * (i * k - j * r),
        two_s * (j * k + i * r),
        1 - two_s * (i * i + j * j),
    )
    return xnp.stack(rows, axis=-1).reshape(quat.shape[:-1] + (3, 3))


def _sqrt_positive_part(x: Array, xnp: ModuleType) -> Array:
    """``sqrt(max(x, 0))`` with a zero (not NaN) gradient at and below 0: the square root is only evaluated on a
    safe argument, because ``where`` differentiates both branches."""
    positive = x > 0
    return xnp.where(positive, xnp.sqrt(xnp.where(positive, x, xnp.ones_like(x))), xnp.zeros_like(x))


def standardize_quaternion(quat: Array, xnp: ModuleType = np) -> Array:
    """``[..., 4]`` XYZW -> the same rotation with ``qw >= 0`` (``q`` and ``-q`` are one rotation)."""
    return xnp.where(quat[..., 3:4] < 0, -quat, quat)


def mat_to_quat(matrix: Array, xnp: ModuleType = np) -> Array:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]``, XYZW, standardised to ``qw >= 0``.

    Each of the four quaternion components can be recovered from the diagonal as ``sqrt(1 +- m00 +- m11 +- m22) / 2``;
    the other three then follow from off-diagonal sums divided by it. All four candidates are built and the one with
    the largest divisor is kept, so the division is always well conditioned (near 180 degrees ``qw`` is tiny and
    dividing by it would amplify rounding; near identity the other three are tiny).
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"mat_to_quat expects [..., 3, 3] rotation matrices, got shape {tuple(matrix.shape)}")
    m00, m01, m02 = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    m10, m11, m12 = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    m20, m21, m22 = matrix[..., 2, 0], matrix[..., 2, 1], matrix[..., 2, 2]

    q_abs = _sqrt_positive_part(
        xnp.stack(
            [1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22], axis=-1
        ),
        xnp,
    )
    # Row c is the quaternion (r, i, j, k) multiplied by 4 * q_abs[c]: one candidate per component.
    candidates = xnp.stack(
        [
            xnp.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], axis=-1),
            xnp.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], axis=-1),
            xnp.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], axis=-1),
            xnp.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], axis=-1),
        ],
        axis=-2,
    )
    # The floor only keeps the unused candidates finite; a candidate whose divisor is that small is never chosen.
    floor = xnp.asarray(0.1, dtype=q_abs.dtype)
    candidates = candidates / (2.0 * xnp.maximum(q_abs, floor)[..., None])
    best = xnp.argmax(q_abs, axis=-1)  # first maximum on ties, as torch's argmax
    rijk = xnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    xyzw = xnp.concatenate([rijk[..., 1:], rijk[..., :1]], axis=-1)
    return standardize_quaternion(xyzw, xnp)


def quat_xyzw_to_wxyz(quat: Array, xnp: ModuleType = np) -> Array:
    """``[..., 4]`` XYZW (this project, VGGT) -> WXYZ (COLMAP's ``QW QX QY QZ``)."""
    return xnp.concatenate([quat[..., 3:], quat[..., :3]], axis=-1)


def quat_wxyz_to_xyzw(quat: Array, xnp: ModuleType = np) -> Array:
    """``[..., 4]`` WXYZ (COLMAP's ``QW QX QY QZ``) -> XYZW (this project, VGGT)."""
    return xnp.concatenate([quat[..., 1:], quat[..., :1]], axis=-1)
