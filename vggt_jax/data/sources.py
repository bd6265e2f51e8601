"""Scene sources: random access to the frames of many scenes, and the checks every loaded frame passes.

A *scene source* is any object with

    __len__() -> int                      number of scenes
    scene_name(index) -> str
    num_frames(index) -> int
    load_frame(index, frame) -> Frame     one frame, loaded and decoded

where a ``Frame`` is a dict ``{image [H, W, 3] uint8, depth [H, W] float32 (0 = invalid; all 0 when the source has no
depth), extrinsic [3, 4] float64 camera-from-world (OpenCV), intrinsic [3, 3] float64 (pixel centres at integer
coordinates), has_depth bool, name str}``. Sources: ``synthetic.SyntheticSource``, ``FileSceneSource`` (what the
COLMAP and CO3D readers return) and ``tfds_builder.TfdsSceneSource``. Sources must be picklable (grain workers get a
copy).

Bad data raises ``DataError`` naming the scene and frame; the pipeline then skips the frame (logging the error once)
or re-raises, as configured (``config.on_bad_frame``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

ON_BAD = ("raise", "skip")


class DataError(ValueError):
    """A scene or frame that cannot be used. ``str(e)`` names the scene, the frame and the problem."""

    def __init__(self, scene: str, frame: str | None, reason: str):
        self.scene, self.frame, self.reason = scene, frame, reason
        where = f"scene {scene!r}" + (f", frame {frame!r}" if frame is not None else "")
        super().__init__(f"{where}: {reason}")


def report(error: DataError, policy: str, seen: set | None = None) -> None:
    """Raise ``error`` (policy "raise") or log it as a warning (policy "skip"); with ``seen``, only the first time
    that message is reported to that set (a training loop may draw the same bad frame many times)."""
    if policy not in ON_BAD:
        raise ValueError(f"on_bad must be one of {ON_BAD}, got {policy!r}")
    if policy == "raise":
        raise error
    message = str(error)
    if seen is None or message not in seen:
        if seen is not None:
            seen.add(message)
        log.warning("bad data: %s", message)


def check_frame(frame: dict, scene: str) -> dict:
    """Validate a loaded frame; returns it (image as 3-channel uint8) or raises ``DataError``.

    Rejects: images that are not [H, W, 3] uint8, depth of another size than the image, non-finite or negative depth,
    a frame that claims depth but has no valid depth pixel, non-finite or non-rigid extrinsics, intrinsics that are
    non-finite or have a non-positive focal length.
    """
    name = frame.get("name")
    image, depth = frame["image"], frame["depth"]
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(scene, name, f"image must be [H, W, 3] uint8, got {image.shape} {image.dtype}")
    if depth.shape != image.shape[:2]:
        raise DataError(scene, name, f"depth map is {depth.shape[::-1]} (WxH) but the image is {image.shape[1::-1]}")
    finite = np.isfinite(depth)
    if not finite.all():
        raise DataError(scene, name, f"{int((~finite).sum())} depth values are NaN or infinite")
    if (depth < 0).any():
        raise DataError(scene, name, f"{int((depth < 0).sum())} depth values are negative")
    if frame["has_depth"] and not (depth > 0).any():
        raise DataError(scene, name, "no valid depth pixel (all depth values are 0)")
    ext, intr = np.asarray(frame["extrinsic"], np.float64), np.asarray(frame["intrinsic"], np.float64)
    if ext.shape != (3, 4) or not np.isfinite(ext).all():
        raise DataError(scene, name, f"extrinsic must be a finite 3x4 matrix, got {ext.tolist()}")
    rot = ext[:, :3]
    if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-4 or np.linalg.det(rot) < 0:
        raise DataError(scene, name, "extrinsic rotation is not a rotation matrix (not orthonormal or det < 0)")
    if intr.shape != (3, 3) or not np.isfinite(intr).all() or intr[0, 0] <= 0 or intr[1, 1] <= 0:
        raise DataError(scene, name, f"intrinsic must be finite with positive focal lengths, got {intr.tolist()}")
    return dict(frame, extrinsic=ext, intrinsic=intr)


# ------------------------------------------------------------------------------------------------------ file sources
@dataclasses.dataclass(frozen=True)
class FrameRecord:
    """Where one frame's files are, and its camera (already in the project's conventions).

    ``depth_format``: None (no depth), "npy" (float32 [H, W]), "colmap_bin" (COLMAP dense ``.bin`` array) or
    "co3d_png" (16-bit PNG holding float16 bit patterns; depth = value * ``depth_scale``). ``depth_mask_path``: an
    8-bit PNG, pixels > 128 valid. ``image_size``: the (H, W) the camera was calibrated for, checked at load time.
    """

    name: str
    image_path: str
    extrinsic: np.ndarray
    intrinsic: np.ndarray
    depth_path: str | None = None
    depth_format: str | None = None
    depth_scale: float = 1.0
    depth_mask_path: str | None = None
    image_size: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class SceneRecord:
    name: str
    frames: tuple[FrameRecord, ...]


class FileSceneSource:
    """A scene source over files described by ``SceneRecord``s (what the COLMAP and CO3D readers produce).

    Args:
      scenes: the scenes; each needs at least one frame.
      depth_max_percentile: if set, depth above this percentile of the frame's depth map (zeros included, as the
        official CO3D loader computes it) is set invalid; the official trainer uses 98 for CO3D.
      nonfinite_depth_invalid: if True, NaN/inf depth values become invalid (0) with a logged warning, as the
        official loader does silently; if False (default) such a frame is bad data (skipped or raised).
    """

    def __init__(
        self,
        scenes: Sequence[SceneRecord],
        depth_max_percentile: float | None = None,
        nonfinite_depth_invalid: bool = False,
    ):
        self.scenes = list(scenes)
        self.depth_max_percentile = depth_max_percentile
        self.nonfinite_depth_invalid = nonfinite_depth_invalid
        self._reported: set[str] = set()
        empty = [s.name for s in self.scenes if not s.frames]
        if empty:
            raise DataError(empty[0], None, "scene has no frames")

    def __len__(self) -> int:
        return len(self.scenes)

    def scene_name(self, index: int) -> str:
        return self.scenes[index].name

    def num_frames(self, index: int) -> int:
        return len(self.scenes[index].frames)

    def load_frame(self, index: int, frame: int) -> dict:
        scene = self.scenes[index]
        rec = scene.frames[frame]
        image = read_image(rec.image_path, scene.name, rec.name)
        if rec.image_size is not None and tuple(image.shape[:2]) != tuple(rec.image_size):
            raise DataError(
                scene.name,
                rec.name,
                f"image is {image.shape[1]}x{image.shape[0]} but its camera is for "
                f"{rec.image_size[1]}x{rec.image_size[0]} (WxH)",
            )
        if rec.depth_format is None:
            depth = np.zeros(image.shape[:2], np.float32)
        else:
            depth = read_depth(rec, scene.name)
            if self.nonfinite_depth_invalid and not np.isfinite(depth).all():
                bad = int((~np.isfinite(depth)).sum())
                msg = f"{bad} non-finite depth values set invalid"
                report(DataError(scene.name, rec.name, msg), "skip", self._reported)
                depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
            if self.depth_max_percentile is not None and depth.size:
                thresh = np.nanpercentile(depth, self.depth_max_percentile)
                if thresh > 0:
                    depth = np.where(depth > thresh, 0, depth).astype(np.float32)
        return dict(
            image=image,
            depth=depth,
            extrinsic=np.asarray(rec.extrinsic, np.float64),
            intrinsic=np.asarray(rec.intrinsic, np.float64),
            has_depth=rec.depth_format is not None,
            name=rec.name,
        )


def read_image(path: str, scene: str, frame: str) -> np.ndarray:
    """An image file -> ``[H, W, 3]`` uint8 RGB (grey and RGBA are converted)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise DataError(scene, frame, f"image file {path} is missing") from None
    except OSError as e:
        raise DataError(scene, frame, f"image file {path} cannot be read ({e})") from None


def read_depth(rec: FrameRecord, scene: str) -> np.ndarray:
    """The depth map of ``rec`` as ``[H, W]`` float32 (format-specific invalid markers become 0)."""
    path = rec.depth_path
    try:
        if rec.depth_format == "npy":
            depth = np.load(path).astype(np.float32)
        elif rec.depth_format == "colmap_bin":
            from vggt_jax.geometry import colmap_io

            depth = colmap_io.read_array(path).astype(np.float32)
        elif rec.depth_format == "co3d_png":
            from vggt_jax.data.readers import co3d

            depth = co3d.read_depth_png(path, rec.depth_scale)
        else:
            raise DataError(scene, rec.name, f"unknown depth format {rec.depth_format!r}")
        if rec.depth_mask_path is not None:
            with Image.open(rec.depth_mask_path) as img:
                mask = np.asarray(img.convert("L")) > 128
            if mask.shape != depth.shape:
                raise DataError(scene, rec.name, f"depth mask is {mask.shape} but the depth map is {depth.shape}")
            depth = np.where(mask, depth, 0).astype(np.float32)
    except FileNotFoundError as e:
        raise DataError(scene, rec.name, f"depth file {e.filename or path} is missing") from None
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(scene, rec.name, f"depth file {path} cannot be read ({e})") from None
    return depth


def resolve(root: str | Path, relative: str) -> str:
    return str(Path(root) / relative)
