"""Small camera helpers the data pipeline needs (numpy, float64).

Private to ``vggt_jax.data`` until ``vggt_jax.geometry`` exists; then these become thin aliases of it.

Conventions (the whole project's): extrinsics are camera-from-world ``[R | t]`` (3x4), OpenCV camera axes (x right,
y down, z forward); intrinsics are 3x3 in pixels with pixel centres at integer coordinates, so pixel ``(u, v)``
covers ``[u - 0.5, u + 0.5] x [v - 0.5, v + 0.5]`` and the image spans ``[-0.5, W - 0.5]``. Depth is the camera z
coordinate (not the ray length); 0 marks an invalid pixel.
"""

from __future__ import annotations

import numpy as np


def homogeneous(extrinsics: np.ndarray) -> np.ndarray:
    """``[..., 3, 4]`` -> ``[..., 4, 4]`` with a ``[0, 0, 0, 1]`` last row."""
    out = np.zeros(extrinsics.shape[:-2] + (4, 4), dtype=extrinsics.dtype)
    out[..., :3, :] = extrinsics
    out[..., 3, 3] = 1
    return out


def invert_extrinsics(extrinsics: np.ndarray) -> np.ndarray:
    """Closed-form inverse of rigid ``[..., 3, 4]`` transforms (camera-from-world <-> world-from-camera)."""
    rot = extrinsics[..., :3, :3]
    rot_t = np.swapaxes(rot, -1, -2)
    trans = -(rot_t @ extrinsics[..., :3, 3:4])
    return np.concatenate([rot_t, trans], axis=-1)


def camera_centers(extrinsics: np.ndarray) -> np.ndarray:
    """``[..., 3, 4]`` camera-from-world -> ``[..., 3]`` camera centres in world coordinates."""
    return invert_extrinsics(extrinsics)[..., :3, 3]


def apply(matrix: np.ndarray, points: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """``points [..., k] -> points @ matrix.T (+ offset)`` for a small ``matrix [m, k]``, in the points' dtype.

    Written as k broadcast multiply-adds, not ``@``: on image-sized ``[N, 3] @ [3, 3]`` products numpy calls
    multithreaded OpenBLAS, measured 200x slower (100 ms vs 0.5 ms) on a 2-core machine where OpenBLAS starts more
    threads than there are cores; einsum was 2x slower than this.
    """
    matrix = np.asarray(matrix, points.dtype)
    out = points[..., 0:1] * matrix[:, 0]
    for j in range(1, matrix.shape[1]):
        out += points[..., j : j + 1] * matrix[:, j]
    if offset is not None:
        out += np.asarray(offset, points.dtype)
    return out


def world_to_camera(points: np.ndarray, extrinsic: np.ndarray) -> np.ndarray:
    """``points [..., 3]`` world, ``extrinsic [3, 4]`` -> camera-frame points ``[..., 3]``."""
    return apply(extrinsic[:3, :3], points, extrinsic[:3, 3])


def project(points: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of world points.

    Args:
      points: ``[..., 3]`` world points.
      extrinsic: ``[3, 4]`` camera-from-world.
      intrinsic: ``[3, 3]``.
    Returns:
      ``uv [..., 2]`` pixel coordinates (x, y) and ``z [...]`` camera depth. Points with ``z <= 0`` get non-finite or
      meaningless ``uv``; callers mask them with ``z``.
    """
    cam = world_to_camera(points, extrinsic)
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = cam[..., :2] / z[..., None]
    uv = apply(intrinsic[:2, :2], xy, intrinsic[:2, 2])
    return uv, z


def pixel_rays(intrinsic: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """``uv [..., 2]`` pixel coordinates -> camera-frame ray directions ``[..., 3]`` with z = 1.

    Solves ``K [x, y, 1]^T = [u, v, 1]^T`` for an upper-triangular ``K`` (skew allowed) element-wise: several times
    faster than a batched matmul with ``inv(K)`` on image-sized inputs.
    """
    (fx, skew, cx), (_, fy, cy) = intrinsic[0], intrinsic[1]
    out = np.empty(uv.shape[:-1] + (3,), np.float64)
    out[..., 1] = (uv[..., 1] - cy) / fy
    out[..., 0] = (uv[..., 0] - cx - skew * out[..., 1]) / fx
    out[..., 2] = 1.0
    return out


def pixel_grid(height: int, width: int) -> np.ndarray:
    """``[H, W, 2]`` float64 (u, v) coordinates of the pixel centres."""
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    return np.stack([u, v], axis=-1)


def depth_to_camera_points(depth: np.ndarray, intrinsic: np.ndarray) -> np.ndarray:
    """``depth [H, W]`` -> camera-frame points ``[H, W, 3]`` (0 depth gives the origin)."""
    rays = pixel_rays(intrinsic, pixel_grid(*depth.shape))
    return rays * depth[..., None]


def depth_to_world_points(depth: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> np.ndarray:
    """``depth [H, W]`` -> world points ``[H, W, 3]`` (float64). Invalid pixels map to the camera centre; callers
    use ``depth > 0`` as the mask."""
    cam = depth_to_camera_points(depth, intrinsic)
    cam_from_world = invert_extrinsics(extrinsic)
    return apply(cam_from_world[:3, :3], cam, cam_from_world[:3, 3])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-from-world ``[3, 4]`` for a camera at ``eye`` looking at ``target`` (OpenCV axes: image y points along
    ``-up``), then rolled by ``roll`` radians about its optical axis."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    c, s = np.cos(roll), np.sin(roll)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot
    return np.concatenate([rot, -(rot @ eye)[:, None]], axis=1)


def quaternion_to_rotation(qvec: np.ndarray) -> np.ndarray:
    """``[..., 4]`` unit quaternions (w, x, y, z), COLMAP's order -> ``[..., 3, 3]`` rotation matrices."""
    q = qvec / np.linalg.norm(qvec, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def rotation_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation -> ``[4]`` unit quaternion (w, x, y, z) with ``w >= 0`` (Shepperd's method, stable for
    180-degree rotations)."""
    m = np.asarray(rot, dtype=np.float64)
    trace = np.trace(m)
    if trace > max(m[0, 0], m[1, 1], m[2, 2]):
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] >= m[1, 1] and m[0, 0] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    return q if q[0] >= 0 else -q
