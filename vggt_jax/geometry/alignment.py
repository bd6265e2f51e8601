"""Similarity alignment (Umeyama) and the pose errors that are invariant to it.

* ``umeyama(src, dst)`` finds the similarity ``dst ~ s R src + t`` in the least-squares sense (Umeyama 1991, the
  same estimator ``evo`` uses for ``-as``), optionally weighted.
* ``transform_extrinsics`` re-expresses camera-from-world extrinsics in a world moved by such a similarity, so a
  reconstruction can be brought into the ground truth's frame (ATE) or into camera 0's frame at a chosen scale.
* ``relative_pose_errors``: rotation and translation-direction errors of every ordered frame pair, the quantities
  behind RRA/RTA/AUC (VGGT, PoseDiffusion); they do not depend on the world frame or the scale of either input.

Conventions as in ``vggt_jax.geometry.cameras``: extrinsics ``[..., 3, 4]`` camera-from-world, OpenCV axes.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from vggt_jax.geometry.cameras import camera_centers, closed_form_inverse_se3
from vggt_jax.geometry.rotation import Array, matmul


def umeyama(
    src: Array, dst: Array, weights: Array | None = None, with_scale: bool = True, xnp: ModuleType = np
) -> tuple[Array, Array, Array]:
    """The similarity ``(s, R [3, 3], t [3])`` minimising ``sum_i w_i |dst_i - (s R src_i + t)|^2``.

    Args:
      src, dst: ``[N, 3]`` corresponding points (N >= 3, not all on a line for a unique rotation).
      weights: ``[N]`` non-negative, default uniform.
      with_scale: False fixes ``s = 1`` (a rigid alignment).
    """
    if src.shape != dst.shape or src.ndim != 2 or src.shape[-1] != 3:
        raise ValueError(f"umeyama needs two [N, 3] arrays of the same shape, got {src.shape} and {dst.shape}")
    w = xnp.ones(src.shape[0], src.dtype) if weights is None else xnp.asarray(weights, src.dtype)
    w = w / xnp.sum(w)
    mu_src, mu_dst = w @ src, w @ dst
    a, b = src - mu_src, dst - mu_dst
    cov = matmul((b * w[:, None]).T, a, xnp)  # [3, 3] = sum_i w_i b_i a_i^T
    u, d, vt = xnp.linalg.svd(cov)
    sign = xnp.where(xnp.linalg.det(u) * xnp.linalg.det(vt) < 0, -1.0, 1.0)
    correction = xnp.asarray([1.0, 1.0, 0.0], src.dtype) + xnp.asarray([0.0, 0.0, 1.0], src.dtype) * sign
    rotation = matmul(u * correction, vt, xnp)
    var_src = xnp.sum(w * xnp.sum(a * a, axis=-1))
    scale = xnp.sum(d * correction) / var_src if with_scale else xnp.asarray(1.0, src.dtype)
    translation = mu_dst - scale * matmul(rotation, mu_src, xnp)
    return scale, rotation, translation


def apply_similarity(points: Array, scale: Array, rotation: Array, translation: Array, xnp: ModuleType = np) -> Array:
    """``s R p + t`` for points ``[..., 3]``."""
    return scale * matmul(points, rotation.T, xnp) + translation


def transform_extrinsics(
    extrinsics: Array, scale: Array, rotation: Array, translation: Array, xnp: ModuleType = np
) -> Array:
    """Cameras ``[..., 3, 4]`` of a world ``x`` -> the same cameras in the world ``x' = s R x + t``.

    Camera frames are scaled with the world (``x_cam' = s x_cam``), so projections do not change and depths scale
    by ``s``: ``R_c' = R_c R^T``, ``t_c' = s t_c - R_c' t``.
    """
    rot = matmul(extrinsics[..., :3, :3], rotation.T, xnp)
    trans = scale * extrinsics[..., :3, 3] - matmul(rot, translation, xnp)
    return xnp.concatenate([rot, trans[..., None]], axis=-1)


def align_cameras(pred: Array, gt: Array, with_scale: bool = True, xnp: ModuleType = np):
    """The similarity taking the predicted camera centres onto the ground truth's (``umeyama``), as
    ``(s, R, t)``; ``pred, gt``: ``[S, 3, 4]`` extrinsics, S >= 3 with centres not on one line."""
    return umeyama(camera_centers(pred, xnp), camera_centers(gt, xnp), with_scale=with_scale, xnp=xnp)


def relative_pose_errors(pred: Array, gt: Array, xnp: ModuleType = np) -> tuple[Array, Array, Array]:
    """Errors of the relative pose of every ordered frame pair.

    Args:
      pred, gt: ``[..., S, 3, 4]`` camera-from-world extrinsics.
    Returns:
      ``(rotation error, translation-direction error, ground-truth baseline)``, each ``[..., S, S]``, at ``[i, j]``
      for the relative pose ``E_j E_i^-1``: the angle of ``R_pred^T R_gt`` in degrees; the angle between the
      relative translations in degrees folded to [0, 90] (a direction's sign is ambiguous for the metrics built
      on it); the norm of the ground-truth relative translation.
    """

    def relative(ext):
        inv = closed_form_inverse_se3(ext, xnp)  # [..., S, 4, 4] world-from-camera
        rot = matmul(ext[..., None, :, :3, :3], inv[..., :, None, :3, :3], xnp)  # [..., i, j] = R_j R_i^T
        trans = matmul(ext[..., None, :, :3, :3], inv[..., :, None, :3, 3:], xnp)[..., 0] + ext[..., None, :, :3, 3]
        return rot, trans

    rot_p, trans_p = relative(pred)
    rot_g, trans_g = relative(gt)
    r_err = matmul(xnp.swapaxes(rot_p, -1, -2), rot_g, xnp)
    cos = xnp.clip((xnp.trace(r_err, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    rot_deg = xnp.degrees(xnp.arccos(cos))
    norm_p, norm_g = xnp.linalg.norm(trans_p, axis=-1), xnp.linalg.norm(trans_g, axis=-1)
    cos_t = xnp.clip(xnp.sum(trans_p * trans_g, -1) / xnp.maximum(norm_p * norm_g, 1e-12), -1.0, 1.0)
    t_deg = xnp.degrees(xnp.arccos(cos_t))
    return rot_deg, xnp.minimum(t_deg, 180.0 - t_deg), norm_g
