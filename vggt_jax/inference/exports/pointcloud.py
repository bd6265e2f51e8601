"""Coloured point clouds: ``points.ply`` (binary PLY, any viewer) and ``scene.glb`` (points + camera frustums).

Both take a ``PointSelection`` (``_common.select_points``: the confidence filter of upstream's demos). The PLY keeps
VGGT's world frame (camera 0's OpenCV frame: y down, z forward), the frame the COLMAP and transforms.json exports
use, so all three line up. The GLB is for looking at: glTF is y-up, so it is rotated 180 degrees about x (y and z
negated, a rigid motion), which puts camera 0 at the origin looking down -z with y up, as a viewer expects.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from vggt_jax.inference.exports._common import (
    ExportError,
    PointSelection,
    check_array,
    check_cameras,
    commit_files,
    frustum_corners,
    scene_scale,
)

# glTF viewers are y-up and look down -z; OpenCV cameras are y-down and look down +z.
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])
_CAMERA_COLORS = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [0, 128, 128],
        [170, 110, 40],
    ],
    np.uint8,
)


def ply_bytes(xyz: np.ndarray, rgb: np.ndarray) -> bytes:
    """Binary little-endian PLY: ``xyz [P, 3]`` as float32 x, y, z and ``rgb [P, 3]`` uint8 as red, green, blue."""
    xyz = check_array("xyz", xyz, (None, 3))
    rgb = check_array("rgb", rgb, (len(xyz), 3))
    vertex = np.empty(
        len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    )
    vertex["x"], vertex["y"], vertex["z"] = xyz.T.astype(np.float32)
    vertex["red"], vertex["green"], vertex["blue"] = rgb.T.astype(np.uint8)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment vggt_jax point cloud, VGGT world frame (OpenCV axes)\n"
        f"element vertex {len(xyz)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    return header.encode("ascii") + vertex.tobytes()


def write_ply(directory: str | os.PathLike, points: PointSelection, filename: str = "points.ply") -> Path:
    """Write ``points`` as a coloured binary PLY; returns its path."""
    return commit_files(directory, {filename: ply_bytes(points.xyz, points.rgb)})[0]


def _frustum_mesh(corners: np.ndarray, color: np.ndarray):
    """A camera as an open pyramid ``corners [5, 3]`` (apex first), faces in both windings so that viewers that
    cull back faces still draw every side."""
    import trimesh

    sides = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    faces = np.concatenate([sides, sides[:, ::-1]])
    return trimesh.Trimesh(corners, faces, face_colors=np.append(color, 255), process=False)


def glb_bytes(
    points: PointSelection,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    frustum_size: float | None = None,
) -> bytes:
    """glTF binary of the points and one frustum per camera (``camera_000``, ...), rotated to glTF's y-up.

    Args:
      points: the selection to draw (node ``points``).
      extrinsics: ``[S, 3, 4]`` camera-from-world, OpenCV axes; intrinsics ``[S, 3, 3]`` for images of
        ``image_sizes_hw [S, 2]`` pixels (any resolution, VGGT's pixel grid).
      frustum_size: camera depth of the drawn frustums; default 5% of the scene's size.
    """
    try:
        import trimesh
    except ImportError as e:  # an optional dependency: the viz extra
        raise ExportError("scene.glb needs trimesh (pip install trimesh==5.2.0)") from e
    extrinsics, intrinsics, sizes = check_cameras(extrinsics, intrinsics, image_sizes_hw)
    size = frustum_size if frustum_size is not None else 0.05 * scene_scale(points.xyz)
    corners = frustum_corners(extrinsics, intrinsics, sizes, size)
    scene = trimesh.Scene()
    rgba = np.concatenate([points.rgb, np.full((len(points), 1), 255, np.uint8)], axis=1)
    scene.add_geometry(trimesh.PointCloud(points.xyz @ OPENCV_TO_GLTF, colors=rgba), geom_name="points")
    for k, camera in enumerate(corners):
        color = _CAMERA_COLORS[k % len(_CAMERA_COLORS)]
        scene.add_geometry(_frustum_mesh(camera @ OPENCV_TO_GLTF, color), geom_name=f"camera_{k:03d}")
    buffer = io.BytesIO(scene.export(file_type="glb"))
    return buffer.getvalue()


def write_glb(
    directory: str | os.PathLike,
    points: PointSelection,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    filename: str = "scene.glb",
    frustum_size: float | None = None,
) -> Path:
    """Write ``scene.glb`` (see ``glb_bytes``); returns its path."""
    content = glb_bytes(points, extrinsics, intrinsics, image_sizes_hw, frustum_size)
    return commit_files(directory, {filename: content})[0]
