"""Point tracks: ``tracks.npz`` and ``tracks_overlay.png`` (the frames side by side, the tracks drawn on them).

``tracks.npz`` keys (no pickled objects; ``np.load`` opens it as is):
  ``tracks [S, N, 2]`` float32 pixel (x, y), VGGT's pixel grid (centres at integers), in the pixels of the frames
  they were predicted on (or of the original images, if the caller mapped them with ``ImageMeta.points_to_original``:
  ``coordinates`` says which); ``vis [S, N]``, ``conf [S, N]`` float32 in [0, 1] when given;
  ``image_names [S]`` unicode; ``coordinates`` 0-d unicode.
"""

from __future__ import annotations

import colorsys
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vggt_jax.inference.exports._common import check_array, check_names, commit_files, to_uint8_colors


def tracks_npz_bytes(
    tracks: np.ndarray,
    image_names: Sequence[str],
    *,
    vis: np.ndarray | None = None,
    conf: np.ndarray | None = None,
    coordinates: str = "processed",
) -> bytes:
    tracks = check_array("tracks", tracks, (None, None, 2))
    arrays = {
        "tracks": tracks.astype(np.float32),
        "image_names": np.asarray(check_names(image_names, len(tracks))),
        "coordinates": np.asarray(coordinates),
    }
    for key, value in (("vis", vis), ("conf", conf)):
        if value is not None:
            arrays[key] = check_array(key, value, tracks.shape[:2]).astype(np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def track_colors(count: int) -> np.ndarray:
    """``[N, 3]`` uint8, evenly spaced hues so that neighbouring track ids differ."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0  # golden-ratio steps spread any number of hues
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.9, 1.0)] for h in hues], np.uint8)


def overlay_bytes(
    frames: np.ndarray,
    tracks: np.ndarray,
    vis: np.ndarray | None = None,
    *,
    vis_threshold: float = 0.5,
    columns: int = 4,
    tile_width: int = 320,
) -> bytes:
    """PNG of the frames in a grid (``columns`` wide, each scaled to ``tile_width``), each with its track points:
    filled where visible (``vis >= vis_threshold`` or no ``vis``), hollow where not; frame 0 holds the queries."""
    frames = to_uint8_colors(frames)
    count, height, width = frames.shape[:3]
    tracks = check_array("tracks", tracks, (count, None, 2)).astype(np.float64)
    visible = np.ones(tracks.shape[:2], bool)
    if vis is not None:
        visible = check_array("vis", vis, tracks.shape[:2]) >= vis_threshold
    scale = tile_width / width
    tile_height = max(1, round(height * scale))
    columns = min(columns, count)
    rows = -(-count // columns)
    canvas = Image.new("RGB", (columns * tile_width, rows * tile_height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    colors = [tuple(int(v) for v in c) for c in track_colors(tracks.shape[1])]
    radius = max(2.0, tile_width / 64)
    for k in range(count):
        x0, y0 = (k % columns) * tile_width, (k // columns) * tile_height
        canvas.paste(Image.fromarray(frames[k]).resize((tile_width, tile_height), Image.Resampling.BILINEAR), (x0, y0))
        for n, ((x, y), seen) in enumerate(zip(tracks[k], visible[k], strict=True)):
            if not np.isfinite([x, y]).all():
                continue
            # Pixel centres sit at integers: the tile coordinate of x is (x + 0.5) * scale - 0.5.
            cx, cy = x0 + (x + 0.5) * scale - 0.5, y0 + (y + 0.5) * scale - 0.5
            box = (cx - radius, cy - radius, cx + radius, cy + radius)
            draw.ellipse(box, fill=colors[n] if seen else None, outline=colors[n], width=1 if seen else 2)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def write_tracks(
    directory: str | os.PathLike,
    tracks: np.ndarray,
    image_names: Sequence[str],
    *,
    vis: np.ndarray | None = None,
    conf: np.ndarray | None = None,
    frames: np.ndarray | None = None,
    coordinates: str = "processed",
    vis_threshold: float = 0.5,
) -> list[Path]:
    """Write ``tracks.npz`` and, given the ``frames [S, H, W, 3]`` (or ``[S, 3, H, W]``) the tracks are in,
    ``tracks_overlay.png``.

    Args:
      tracks: ``[S, N, 2]`` pixel (x, y); vis, conf: ``[S, N]``; coordinates: "processed" or "original".
    """
    files = {"tracks.npz": tracks_npz_bytes(tracks, image_names, vis=vis, conf=conf, coordinates=coordinates)}
    if frames is not None:
        files["tracks_overlay.png"] = overlay_bytes(frames, tracks, vis, vis_threshold=vis_threshold)
    return commit_files(directory, files)
