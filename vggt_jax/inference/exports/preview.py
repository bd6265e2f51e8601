"""``preview.png``: a quick look at the point cloud and the cameras (matplotlib, Agg canvas, no display needed).

Drawn with ``matplotlib.figure.Figure`` and its Agg canvas directly, not ``pyplot``: no global backend switch, no
figure registry, safe inside a long-running server. The plot shows VGGT's world (camera 0's OpenCV frame) with
``-y`` up, so the scene appears upright as camera 0 saw it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from vggt_jax.inference.exports._common import (
    ExportError,
    PointSelection,
    check_cameras,
    commit_files,
    frustum_corners,
    scene_scale,
)

# Plot axes (X, Y, Z) = world (x, z, -y): depth runs into the picture and up is up.
_TO_PLOT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def preview_bytes(
    points: PointSelection,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    *,
    max_points: int = 20000,
    size_px: tuple[int, int] = (960, 720),
    seed: int = 0,
) -> bytes:
    """PNG bytes of a 3D scatter of (at most ``max_points`` of) ``points`` and one frustum per camera."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ExportError(f"preview.png needs matplotlib (pip install matplotlib==3.11.2): {e}") from e
    extrinsics, intrinsics, sizes = check_cameras(extrinsics, intrinsics, image_sizes_hw)
    count = len(extrinsics)
    keep = np.arange(len(points))
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_points, replace=False))
    xyz, rgb = points.xyz[keep] @ _TO_PLOT.T, points.rgb[keep] / 255.0
    corners = frustum_corners(extrinsics, intrinsics, sizes, 0.05 * scene_scale(points.xyz)) @ _TO_PLOT.T

    dpi = 100
    figure = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(projection="3d")
    axes.scatter(*xyz.T, c=rgb, s=1.0, depthshade=False, linewidths=0)
    for k, camera in enumerate(corners):
        color = "tab:red" if k == 0 else "tab:blue"
        for a, b in ((0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)):
            axes.plot(*np.stack([camera[a], camera[b]]).T, color=color, linewidth=0.8)
    every = np.concatenate([xyz, corners.reshape(-1, 3)])
    low, high = np.percentile(every, [1, 99], axis=0)
    centre, half = (low + high) / 2, max(float((high - low).max()) / 2, 1e-6)
    axes.set(
        xlim=(centre[0] - half, centre[0] + half),
        ylim=(centre[1] - half, centre[1] + half),
        zlim=(centre[2] - half, centre[2] + half),
        xlabel="x",
        ylabel="z (forward)",
        zlabel="-y (up)",
    )
    axes.set_box_aspect((1, 1, 1))
    axes.view_init(elev=20, azim=-60)
    axes.set_title(f"{len(points)} points, {count} cameras (camera 0 red)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_preview(
    directory: str | os.PathLike,
    points: PointSelection,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    filename: str = "preview.png",
) -> Path:
    """Write ``preview.png``; extrinsics ``[S, 3, 4]``, intrinsics ``[S, 3, 3]`` for images ``[S, 2]`` (H, W)."""
    return commit_files(directory, {filename: preview_bytes(points, extrinsics, intrinsics, image_sizes_hw)})[0]
