"""Pinhole cameras: rigid inverses, unprojection of depth maps, projection of points, pixel-grid conventions.

Conventions, for numpy and jax.numpy alike (``xnp=np`` or ``xnp=jnp``):

* ``extrinsics [..., 3, 4]`` are **camera-from-world** ``[R | t]`` in OpenCV axes (x right, y down, z forward):
  ``x_cam = R @ x_world + t``. ``closed_form_inverse_se3`` turns them into camera-to-world ``[..., 4, 4]``.
* ``intrinsics [..., 3, 3]`` are in pixels, ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``, and use VGGT's pixel grid:
  the centre of the pixel in row ``i``, column ``j`` has coordinates ``(x, y) = (j, i)`` (upstream unprojects with
  ``u, v = meshgrid(arange(W), arange(H))``; OpenCV's convention too). COLMAP and nerfstudio put that centre at
  ``(j + 0.5, i + 0.5)``: ``intrinsics_to_corner_convention`` converts (exports use it).
* depth is the z coordinate in the camera frame (not the distance along the ray); depth <= 0 marks no data.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import numpy as np

from vggt_jax.geometry.rotation import Array, matmul


def closed_form_inverse_se3(se3: Array, xnp: ModuleType = np) -> Array:
    """Inverse of rigid transforms ``[..., 4, 4]`` or ``[..., 3, 4]`` -> ``[..., 4, 4]``: ``[R^T | -R^T t]``.

    Exact for rotations (no general matrix inverse, so no conditioning loss); the input is assumed rigid.
    """
    if se3.shape[-2:] not in ((4, 4), (3, 4)):
        raise ValueError(f"closed_form_inverse_se3 expects [..., 4, 4] or [..., 3, 4], got {tuple(se3.shape)}")
    rotation_t = xnp.swapaxes(se3[..., :3, :3], -1, -2)
    top_right = -matmul(rotation_t, se3[..., :3, 3:], xnp)
    top = xnp.concatenate([rotation_t, top_right], axis=-1)
    bottom = xnp.broadcast_to(xnp.asarray([0.0, 0.0, 0.0, 1.0], dtype=top.dtype), top.shape[:-2] + (1, 4))
    return xnp.concatenate([top, bottom], axis=-2)


def camera_centers(extrinsics: Array, xnp: ModuleType = np) -> Array:
    """Camera-from-world ``[..., 3, 4]`` -> the camera centres ``[..., 3]`` in world coordinates, ``-R^T t``."""
    return closed_form_inverse_se3(extrinsics, xnp)[..., :3, 3]


def look_at(eye: Array, target: Array, up: Array, roll: float = 0.0, xnp: ModuleType = np) -> Array:
    """Camera-from-world ``[3, 4]`` of a camera at ``eye [3]`` looking at ``target [3]``, OpenCV axes with the image
    y axis along ``-up``, then rolled by ``roll`` radians about its optical axis."""
    forward = target - eye
    forward = forward / xnp.linalg.norm(forward)
    right = xnp.cross(forward, up)
    right = right / xnp.linalg.norm(right)
    down = xnp.cross(forward, right)
    rotation = xnp.stack([right, down, forward])  # rows: the camera axes in world coordinates
    c, s = xnp.cos(roll), xnp.sin(roll)
    rotation = matmul(xnp.asarray([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), rotation, xnp)
    return xnp.concatenate([rotation, -matmul(rotation, eye, xnp)[:, None]], axis=1)


def transform_points(points: Array, matrix: Array, offset: Array | None = None, xnp: ModuleType = np) -> Array:
    """``points [..., k] @ matrix.T + offset`` for one small ``matrix [m, k]`` (and ``offset [m]``), in the points'
    dtype: e.g. ``transform_points(x, R, t)`` maps world points ``x`` into the camera ``[R | t]``.

    Written as k broadcast multiply-adds, not a matrix product: numpy sends image-sized ``[N, 3] @ [3, 3]`` products
    to multithreaded OpenBLAS, measured 8-200x slower on a 2-core machine where OpenBLAS starts more threads than
    there are cores (einsum was 2x slower than this). The order of operations is fixed, so results do not depend on
    the BLAS build either (the data pipeline's outputs are compared bit for bit).
    """
    matrix = xnp.asarray(matrix, points.dtype)
    out = points[..., 0:1] * matrix[:, 0]
    for j in range(1, matrix.shape[1]):
        out = out + points[..., j : j + 1] * matrix[:, j]
    if offset is not None:
        out = out + xnp.asarray(offset, points.dtype)
    return out


def pixel_grid(height: int, width: int, xnp: ModuleType = np) -> tuple[Array, Array]:
    """``(u, v)``, each ``[H, W]`` int, the column and row index of every pixel: its centre in VGGT's convention."""
    return xnp.meshgrid(xnp.arange(width), xnp.arange(height))


def pixel_rays(u: Array, v: Array, intrinsics: Array, xnp: ModuleType = np) -> Array:
    """Pixel coordinates ``u, v [...]`` (x, y) -> camera-frame ray directions ``[..., 3]`` with z = 1, so depth times
    the ray is the camera-frame point. ``pixel_rays(*pixel_grid(H, W), K)`` gives the rays of all pixel centres.

    ``intrinsics [3, 3]`` is one upper-triangular camera (skew allowed); ``K [x, y, 1]^T = [u, v, 1]^T`` is solved
    element-wise, several times faster than a product with ``inv(K)`` on image-sized inputs.
    """
    (fx, skew, cx), (_, fy, cy) = intrinsics[0], intrinsics[1]
    y = (v - cy) / fy
    x = (u - cx - skew * y) / fx
    return xnp.stack([x, y, xnp.ones_like(x)], axis=-1)


def depth_to_cam_points(
    depth: Array, intrinsics: Array, *, round_to_float32: bool = False, xnp: ModuleType = np
) -> Array:
    """Depth maps ``[..., H, W]`` and intrinsics ``[..., 3, 3]`` -> camera-frame points ``[..., H, W, 3]``.

    ``x = (u - cx) * d / fx``, ``y = (v - cy) * d / fy``, ``z = d`` (upstream's order of operations; skew must be 0).
    ``round_to_float32`` rounds the points to float32, as upstream's ``unproject_depth_map_to_point_map`` does.
    """
    height, width = depth.shape[-2:]
    u, v = pixel_grid(height, width, xnp)
    fx, fy = intrinsics[..., 0, 0, None, None], intrinsics[..., 1, 1, None, None]
    cx, cy = intrinsics[..., 0, 2, None, None], intrinsics[..., 1, 2, None, None]
    points = xnp.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], axis=-1)
    return points.astype(xnp.float32) if round_to_float32 else points


def cam_to_world_points(cam_points: Array, extrinsics: Array, xnp: ModuleType = np) -> Array:
    """Camera-frame points ``[..., H, W, 3]`` -> world points ``[..., H, W, 3]`` for cameras ``[..., 3, 4]``."""
    cam_to_world = closed_form_inverse_se3(extrinsics, xnp)
    rotation_t = xnp.swapaxes(cam_to_world[..., :3, :3], -1, -2)[..., None, :, :]
    return matmul(cam_points, rotation_t, xnp) + cam_to_world[..., None, None, :3, 3]


def depth_to_world_points(
    depth: Array,
    extrinsics: Array,
    intrinsics: Array,
    *,
    round_cam_points_to_float32: bool = False,
    xnp: ModuleType = np,
) -> Array:
    """Unproject depth maps into the world frame.

    Args:
      depth: ``[..., H, W]`` or ``[..., H, W, 1]``, camera z (pixels with depth 0 land on the camera centre).
      extrinsics: ``[..., 3, 4]`` camera-from-world, OpenCV axes.
      intrinsics: ``[..., 3, 3]`` in the pixels of the depth map, VGGT's pixel grid (module docstring).
      round_cam_points_to_float32: reproduce upstream's float32 rounding of the camera-frame points (off here:
        it costs ~1e-7 relative for nothing; ``unproject_depth_map_to_point_map`` turns it on).
    Returns:
      ``[..., H, W, 3]`` world points, in the promoted dtype of the inputs.
    """
    if depth.ndim >= 3 and depth.shape[-1] == 1 and depth.ndim == extrinsics.ndim + 1:
        depth = depth[..., 0]
    cam_points = depth_to_cam_points(depth, intrinsics, round_to_float32=round_cam_points_to_float32, xnp=xnp)
    return cam_to_world_points(cam_points, extrinsics, xnp)


def unproject_depth_map_to_point_map(
    depth_map: Array,
    extrinsics_cam: Array,
    intrinsics_cam: Array,
    *,
    round_cam_points_to_float32: bool = True,
    xnp: ModuleType = np,
) -> Array:
    """Upstream's ``unproject_depth_map_to_point_map``: ``depth [S, H, W, 1]`` (or ``[S, H, W]``), ``[S, 3, 4]``,
    ``[S, 3, 3]`` -> ``[S, H, W, 3]`` world points.

    ``round_cam_points_to_float32`` defaults to upstream's behaviour: it rounds the camera-frame points to float32
    (``astype(np.float32)``) before the rigid transform, and ``geometry.npz`` ``unproj__world_points`` and the
    official demos' point clouds carry that rounding.
    """
    if depth_map.ndim == 4:
        depth_map = depth_map[..., 0]
    return depth_to_world_points(
        depth_map, extrinsics_cam, intrinsics_cam, round_cam_points_to_float32=round_cam_points_to_float32, xnp=xnp
    )


def world_to_cam_points(points: Array, extrinsics: Array, xnp: ModuleType = np) -> Array:
    """World points ``[*B, *P, 3]`` -> camera-frame points ``[*B, *P, 3]`` for cameras ``extrinsics [*B, 3, 4]``
    (``*B`` the camera batch shape, ``*P`` any point shape, e.g. ``(N,)`` or ``(H, W)``)."""
    batch = extrinsics.shape[:-2]
    flat = points.reshape(batch + (-1, 3))
    rotation_t = xnp.swapaxes(extrinsics[..., :3, :3], -1, -2)
    cam = matmul(flat, rotation_t, xnp) + extrinsics[..., None, :3, 3]
    return cam.reshape(points.shape)


def project_points(points: Array, extrinsics: Array, intrinsics: Array, xnp: ModuleType = np) -> tuple[Array, Array]:
    """Project world points into their cameras.

    Args:
      points: ``[*B, *P, 3]`` world points; ``*B`` matches the cameras' batch shape (e.g. ``[S, N, 3]`` or the dense
        ``[S, H, W, 3]`` against ``S`` cameras; add a broadcast axis yourself to project one set into every camera).
      extrinsics: ``[*B, 3, 4]`` camera-from-world, OpenCV axes.
      intrinsics: ``[*B, 3, 3]`` pixels.
    Returns:
      ``(xy [*B, *P, 2], depth [*B, *P])``: pixel coordinates in the intrinsics' convention and camera z. Points with
      depth <= 0 are behind the camera; their ``xy`` is meaningless (inf/NaN at 0): mask with ``depth > 0``.
    """
    cam = world_to_cam_points(points, extrinsics, xnp)
    batch = extrinsics.shape[:-2]
    flat = cam.reshape(batch + (-1, 3))
    homogeneous = matmul(flat, xnp.swapaxes(intrinsics, -1, -2), xnp)
    with np.errstate(divide="ignore", invalid="ignore"):  # depth 0: documented inf/NaN, not a warning
        xy = homogeneous[..., :2] / homogeneous[..., 2:3]
    return xy.reshape(points.shape[:-1] + (2,)), cam[..., 2]


def warp_intrinsics(
    intrinsics: Array, scale_xy: Sequence[float], offset_xy: Sequence[float], xnp: ModuleType = np
) -> Array:
    """Intrinsics ``[..., 3, 3]`` of an image that has been resized by ``scale_xy`` and then shifted by ``offset_xy``.

    The warp is the one image resizers implement on continuous coordinates whose pixel corners are integers:
    ``x_new_corner = scale * x_corner + offset`` (crop: negative offset; pad: positive). In VGGT's pixel grid
    (centres at integers) that is ``x_new = scale * (x + 0.5) + offset - 0.5``: the principal point gains a
    half-pixel term ``0.5 * (scale - 1)``. The inverse warp is ``scale' = 1 / scale``, ``offset' = -offset / scale``.
    """
    sx, sy = (float(s) for s in scale_xy)
    ox, oy = (float(o) for o in offset_xy)
    warp = xnp.asarray(
        [[sx, 0.0, ox + 0.5 * sx - 0.5], [0.0, sy, oy + 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=intrinsics.dtype
    )
    return matmul(warp, intrinsics, xnp)


def intrinsics_to_corner_convention(intrinsics: Array, xnp: ModuleType = np) -> Array:
    """``[..., 3, 3]`` in VGGT/OpenCV's pixel grid (centres at integers) -> COLMAP/nerfstudio's grid (centres at
    integers + 0.5): the principal point moves by half a pixel, the focal lengths stay."""
    shift = xnp.asarray([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]], dtype=intrinsics.dtype)
    return intrinsics + shift * intrinsics[..., 2:3, 2:3]


def opencv_to_opengl_cam_to_world(cam_to_world: Array, xnp: ModuleType = np) -> Array:
    """Camera-to-world ``[..., 3|4, 4]`` with OpenCV camera axes -> the same camera with OpenGL/nerfstudio axes
    (x right, y up, z backward): flips the camera's y and z axes (columns 1 and 2 of the rotation)."""
    flip = xnp.asarray([1.0, -1.0, -1.0, 1.0], dtype=cam_to_world.dtype)
    return cam_to_world * flip
