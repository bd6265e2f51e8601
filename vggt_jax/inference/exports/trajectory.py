"""Camera trajectories for SLAM tools (evo, the TUM RGB-D and KITTI benchmark scripts).

* ``trajectory_tum.txt``: one line per frame, ``timestamp tx ty tz qx qy qz qw``: the camera-to-world pose (the
  camera centre and the camera's orientation in the world, unit quaternion with the scalar last).
* ``trajectory_kitti.txt``: one line per frame, the camera-to-world ``[3, 4]`` matrix row-major (KITTI's
  ``poses/XX.txt``).

Camera axes are OpenCV's (x right, y down, z forward), as KITTI's; the world is the reconstruction's (camera 0's
frame for VGGT). Values are written with 17 significant digits, so a round trip is exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vggt_jax.geometry import closed_form_inverse_se3, mat_to_quat, quat_to_mat
from vggt_jax.inference.exports._common import check_array, commit_files

TRAJECTORY_FILES = {"tum": "trajectory_tum.txt", "kitti": "trajectory_kitti.txt"}


def _line(values) -> str:
    return " ".join(f"{v:.17g}" for v in values)


def tum_text(extrinsics: np.ndarray, timestamps: np.ndarray | None = None) -> str:
    """TUM lines of camera-from-world ``extrinsics [S, 3, 4]`` at ``timestamps [S]`` (default 0, 1, 2, ...)."""
    extrinsics = check_array("extrinsics", extrinsics, (None, 3, 4)).astype(np.float64)
    stamps = np.arange(len(extrinsics), dtype=np.float64) if timestamps is None else np.asarray(timestamps, np.float64)
    check_array("timestamps", stamps, (len(extrinsics),))
    cam_to_world = closed_form_inverse_se3(extrinsics)
    quat = mat_to_quat(cam_to_world[:, :3, :3])  # XYZW, as TUM orders them
    rows = np.concatenate([stamps[:, None], cam_to_world[:, :3, 3], quat], axis=1)
    return "".join(_line(r) + "\n" for r in rows)


def kitti_text(extrinsics: np.ndarray) -> str:
    """KITTI lines of camera-from-world ``extrinsics [S, 3, 4]``."""
    extrinsics = check_array("extrinsics", extrinsics, (None, 3, 4)).astype(np.float64)
    cam_to_world = closed_form_inverse_se3(extrinsics)[:, :3]
    return "".join(_line(m.reshape(-1)) + "\n" for m in cam_to_world)


def write_trajectories(
    directory: str | os.PathLike, extrinsics: np.ndarray, timestamps: np.ndarray | None = None
) -> list[Path]:
    """Write ``trajectory_tum.txt`` and ``trajectory_kitti.txt`` into ``directory`` (all-or-nothing)."""
    files = {TRAJECTORY_FILES["tum"]: tum_text(extrinsics, timestamps).encode()}
    files[TRAJECTORY_FILES["kitti"]] = kitti_text(extrinsics).encode()
    return commit_files(directory, files)


def read_tum(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps ``[S]``, camera-from-world extrinsics ``[S, 3, 4]``) of a TUM trajectory file."""
    rows = np.loadtxt(Path(path), comments="#", ndmin=2)
    if rows.shape[1] != 8:
        raise ValueError(
            f"{path}: a TUM trajectory has 8 columns (timestamp tx ty tz qx qy qz qw), got {rows.shape[1]}"
        )
    rotation = quat_to_mat(rows[:, 4:8] / np.linalg.norm(rows[:, 4:8], axis=-1, keepdims=True))
    cam_to_world = np.concatenate([rotation, rows[:, 1:4, None]], axis=-1)
    return rows[:, 0], closed_form_inverse_se3(cam_to_world)[:, :3]
