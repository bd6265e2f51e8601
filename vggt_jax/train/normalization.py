"""Ground-truth normalisation of the official trainer (``training/train_utils/normalization.py``).

VGGT predicts cameras and points in the frame of camera 0 and at a canonical scale, so the ground truth is moved
there before the loss: extrinsics become relative to camera 0 (``E_i inv(E_0)``), world points are mapped into
camera 0's frame (``R_0 p + t_0``), and translations, points and depths are divided by the mean distance of the
valid points from camera 0 (per batch item, clamped to [1e-6, 1e6]). Jit-compatible; runs inside the train step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vggt_jax.geometry import closed_form_inverse_se3
from vggt_jax.train.losses import check_and_fix_inf_nan

_HIGHEST = jax.lax.Precision.HIGHEST


def normalize_camera_extrinsics_and_points_batch(
    extrinsics: jax.Array,
    cam_points: jax.Array | None,
    world_points: jax.Array,
    depths: jax.Array | None,
    point_masks: jax.Array,
) -> tuple[jax.Array, jax.Array | None, jax.Array, jax.Array | None]:
    """Args: ``extrinsics [B, S, 3, 4]`` camera-from-world (OpenCV), ``cam_points`` and ``world_points``
    ``[B, S, H, W, 3]``, ``depths [B, S, H, W]``, ``point_masks [B, S, H, W]`` bool (``cam_points``/``depths`` may
    be None). Returns the same four, normalised (``extrinsics [B, S, 3, 4]``)."""
    b, s = extrinsics.shape[:2]
    bottom = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.0, 1.0], extrinsics.dtype), (b, s, 1, 4))
    homog = jnp.concatenate([extrinsics, bottom], axis=-2)
    first_inv = closed_form_inverse_se3(homog[:, 0], xnp=jnp)
    new_extrinsics = jnp.matmul(homog, first_inv[:, None], precision=_HIGHEST)

    rot, trans = extrinsics[:, 0, :3, :3], extrinsics[:, 0, :3, 3]
    new_world = jnp.einsum("bshwj,bij->bshwi", world_points, rot, precision=_HIGHEST) + trans[:, None, None, None]

    dist = jnp.sqrt(jnp.sum(new_world * new_world, axis=-1))
    dist_sum = jnp.sum(dist * point_masks, axis=(1, 2, 3))
    # Upstream adds 1e-3 to an integer count, which torch computes in float32 (the default dtype) even in a float64
    # run; the float64 fixture carries that rounding (2.8e-9 relative), so it is reproduced.
    count = jnp.sum(point_masks, axis=(1, 2, 3)).astype(jnp.float32) + jnp.float32(1e-3)
    avg_scale = jnp.clip(dist_sum / count.astype(dist.dtype), 1e-6, 1e6)

    new_world = new_world / avg_scale[:, None, None, None, None]
    new_extrinsics = new_extrinsics[:, :, :3]
    new_extrinsics = new_extrinsics.at[..., 3].divide(avg_scale[:, None, None])
    if depths is not None:
        depths = check_and_fix_inf_nan(depths / avg_scale[:, None, None, None], hard_max=None)
    if cam_points is not None:
        cam_points = check_and_fix_inf_nan(cam_points / avg_scale[:, None, None, None, None], hard_max=None)
    return (
        check_and_fix_inf_nan(new_extrinsics, hard_max=None),
        cam_points,
        check_and_fix_inf_nan(new_world, hard_max=None),
        depths,
    )
