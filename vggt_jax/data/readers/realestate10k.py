"""RealEstate10K camera files and the frames a user extracted for them.

Layout::

    root/<sequence>.txt          the dataset's camera file (train/ or test/ of RealEstate10K)
    root/<sequence>/<t>.png      the frame at timestamp t (microseconds, as in the camera file); .jpg also read

A camera file's first line is the video's URL; each further line is one frame::

    timestamp fx fy cx cy k1 k2 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3

with ``fx fy cx cy`` normalised by the image width and height (COLMAP's pixel convention: the image spans [0, 1]),
``k1 k2`` zero (the frames are undistorted), and the 3x4 camera-from-world matrix row-major, OpenCV axes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vggt_jax.data.sources import DataError, FrameRecord, SceneRecord, report


def read_camera_file(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(timestamps ``[S]`` int, normalised ``(fx, fy, cx, cy)`` ``[S, 4]``, camera-from-world ``[S, 3, 4]``)."""
    path = Path(path)
    lines = [ln.split() for ln in path.read_text().splitlines()[1:] if ln.strip()]
    if not lines or any(len(ln) != 19 for ln in lines):
        raise DataError(path.stem, None, f"{path} is not a RealEstate10K camera file (19 numbers per frame line)")
    rows = np.array(lines, np.float64)
    return rows[:, 0].astype(np.int64), rows[:, 1:5], rows[:, 7:].reshape(-1, 3, 4)


def load_realestate10k(
    camera_file: str | Path, frames_dir: str | Path | None = None, on_error: str = "raise"
) -> SceneRecord:
    """The frames of one sequence that have an image, with their cameras in this project's conventions."""
    camera_file = Path(camera_file)
    frames_dir = Path(frames_dir) if frames_dir is not None else camera_file.with_suffix("")
    stamps, normalised, extrinsics = read_camera_file(camera_file)
    records = []
    for stamp, (fx, fy, cx, cy), ext in zip(stamps, normalised, extrinsics, strict=True):
        image = next((p for p in (frames_dir / f"{stamp}.png", frames_dir / f"{stamp}.jpg") if p.exists()), None)
        if image is None:
            report(DataError(camera_file.stem, str(stamp), f"no image {frames_dir}/{stamp}.png or .jpg"), on_error)
            continue
        with Image.open(image) as img:
            width, height = img.size
        intrinsic = np.array([[fx * width, 0, cx * width - 0.5], [0, fy * height, cy * height - 0.5], [0, 0, 1.0]])
        records.append(FrameRecord(image.name, str(image), ext, intrinsic, image_size=(height, width)))
    if not records:
        raise DataError(camera_file.stem, None, f"no frame of {camera_file} has an image in {frames_dir}")
    return SceneRecord(camera_file.stem, tuple(records))
