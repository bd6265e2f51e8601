"""Camera parameters <-> VGGT's 9-d pose encoding ``absT_quaR_FoV`` (``vggt/utils/pose_enc.py``).

``pose_enc[..., :] = [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``:

* ``t`` and the quaternion (XYZW, ``qw >= 0``) describe the **camera-from-world** extrinsics ``[R | t]`` in OpenCV
  axes (x right, y down, z forward): ``x_cam = R @ x_world + t``. VGGT predicts them in the frame of camera 0.
* ``fov_h = 2 atan((H / 2) / fy)`` and ``fov_w = 2 atan((W / 2) / fx)`` (height first), in radians, for an image of
  ``H x W`` pixels. The principal point is not encoded: decoding puts it at ``(W / 2, H / 2)``.

Both functions take ``xnp=np`` or ``xnp=jnp`` and any leading batch shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import numpy as np

from vggt_jax.geometry.rotation import Array, mat_to_quat, quat_to_mat

POSE_ENCODING_TYPE = "absT_quaR_FoV"


def _check_type(pose_encoding_type: str) -> None:
    if pose_encoding_type != POSE_ENCODING_TYPE:
        raise NotImplementedError(f"pose encoding {pose_encoding_type!r}: only {POSE_ENCODING_TYPE!r} exists")


def _hw(image_size_hw: Sequence[float]) -> tuple[float, float]:
    # Python floats, not numpy scalars: a numpy float64 scalar would promote float32 arrays to float64 (NEP 50),
    # where upstream's Python ints leave the tensor's dtype alone.
    height, width = image_size_hw
    return float(height), float(width)


def extri_intri_to_pose_encoding(
    extrinsics: Array,
    intrinsics: Array,
    image_size_hw: Sequence[float],
    pose_encoding_type: str = POSE_ENCODING_TYPE,
    *,
    float32_output: bool = True,
    xnp: ModuleType = np,
) -> Array:
    """Cameras -> pose encodings.

    Args:
      extrinsics: ``[..., 3, 4]`` camera-from-world ``[R | t]``, OpenCV axes (a ``[..., 4, 4]`` matrix also works).
      intrinsics: ``[..., 3, 3]`` in pixels, ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``; only fx and fy are used.
      image_size_hw: ``(H, W)`` of the image the intrinsics refer to.
      float32_output: round the result to float32, as upstream's ``.float()`` does. On by default because the
        training loss compares predictions against this rounded encoding (shared/fixtures ``geometry.npz``
        ``e2p__pose_encoding`` and ``losses.npz`` ``aux__gt_pose_encoding`` carry it); pass False to keep float64.
    Returns:
      ``[..., 9]`` = ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``.
    """
    _check_type(pose_encoding_type)
    height, width = _hw(image_size_hw)
    rotation = extrinsics[..., :3, :3]
    translation = extrinsics[..., :3, 3]
    quat = mat_to_quat(rotation, xnp=xnp)
    fov_h = 2 * xnp.arctan((height / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * xnp.arctan((width / 2) / intrinsics[..., 0, 0])
    pose_encoding = xnp.concatenate([translation, quat, fov_h[..., None], fov_w[..., None]], axis=-1)
    return pose_encoding.astype(xnp.float32) if float32_output else pose_encoding


def pose_encoding_to_extri_intri(
    pose_encoding: Array,
    image_size_hw: Sequence[float] | None = None,
    pose_encoding_type: str = POSE_ENCODING_TYPE,
    build_intrinsics: bool = True,
    *,
    float32_intrinsics: bool = True,
    xnp: ModuleType = np,
) -> tuple[Array, Array | None]:
    """Pose encodings -> cameras.

    Args:
      pose_encoding: ``[..., 9]``; the quaternion need not be unit length nor standardised.
      image_size_hw: ``(H, W)`` in pixels; needed only to build intrinsics.
      build_intrinsics: if False, the intrinsics returned are None.
      float32_intrinsics: build the intrinsics in float32 whatever the encoding's dtype, as upstream does (it
        allocates them with ``torch.zeros``, float32; ``geometry.npz`` ``p2e__intrinsics`` has that rounding, and
        upstream's demos feed these float32 intrinsics to the unprojection). False keeps the encoding's dtype.
    Returns:
      ``extrinsics [..., 3, 4]`` camera-from-world (OpenCV), in the encoding's dtype, and
      ``intrinsics [..., 3, 3]`` with ``fx = (W / 2) / tan(fov_w / 2)``, ``fy = (H / 2) / tan(fov_h / 2)``,
      principal point ``(W / 2, H / 2)``, or None.
    """
    _check_type(pose_encoding_type)
    translation = pose_encoding[..., :3]
    rotation = quat_to_mat(pose_encoding[..., 3:7], xnp=xnp)
    extrinsics = xnp.concatenate([rotation, translation[..., None]], axis=-1)
    if not build_intrinsics:
        return extrinsics, None
    if image_size_hw is None:
        raise ValueError("pose_encoding_to_extri_intri: image_size_hw=(H, W) is required to build intrinsics")
    height, width = _hw(image_size_hw)
    fy = (height / 2.0) / xnp.tan(pose_encoding[..., 7] / 2.0)
    fx = (width / 2.0) / xnp.tan(pose_encoding[..., 8] / 2.0)
    dtype = xnp.float32 if float32_intrinsics else pose_encoding.dtype
    fx, fy = fx.astype(dtype), fy.astype(dtype)
    zero, one = xnp.zeros_like(fx), xnp.ones_like(fx)
    cx, cy = xnp.full_like(fx, width / 2), xnp.full_like(fx, height / 2)
    intrinsics = xnp.stack(
        [xnp.stack([fx, zero, cx], -1), xnp.stack([zero, fy, cy], -1), xnp.stack([zero, zero, one], -1)], axis=-2
    )
    return extrinsics, intrinsics
