"""Scene sources: random access to the frames of many scenes, and the checks every loaded frame passes.

A *scene source* is any object with

    __len__() -> int                      number of scenes
    scene_name(index) -> str
    num_frames(index) -> int
    load_frame(index, frame) -> Frame     one frame, loaded and decoded

where a ``Frame`` is a dict ``{image [H, W, 3] uint8, depth [H, W] float32 (0 = invalid; all 0 when the source has no
depth), extrinsic [3, 4] float64 camera-from-world (OpenCV), intrinsic [3, 3] float64 (pixel centres at integer
coordinates), has_depth bool, name str}``. Sources: ``synthetic.SyntheticSource``, ``FileSceneSource`` (over what
the readers in ``vggt_jax.data.readers`` return) and ``tfds_builder.TfdsSceneSource``. Sources must be picklable
(grain workers get a copy).

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

from vggt_jax.geometry import closed_form_inverse_se3

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
    if not is_rotation(ext[:, :3]):
        raise DataError(scene, name, "extrinsic rotation is not a rotation matrix (not orthonormal or det < 0)")
    if intr.shape != (3, 3) or not np.isfinite(intr).all() or intr[0, 0] <= 0 or intr[1, 1] <= 0:
        raise DataError(scene, name, f"intrinsic must be finite with positive focal lengths, got {intr.tolist()}")
    return dict(frame, extrinsic=ext, intrinsic=intr)


# ------------------------------------------------------------------------------------------------------ file sources
@dataclasses.dataclass(frozen=True)
class FrameRecord:
    """Where one frame's files are, and its camera (already in the project's conventions).

    ``depth_format``: None (no depth), "npy" (float32 [H, W]), "npy_stack" (frame ``depth_index`` of a float32
    [S, H, W] file, read memory-mapped: the batch job's depth.npy), "colmap_bin" (COLMAP dense ``.bin`` array),
    "co3d_png" (16-bit PNG holding float16 bit patterns; depth = value * ``depth_scale``), "png_u16" (16-bit PNG of
    integers; depth = value * ``depth_scale``, 0 invalid: ScanNet, Replica) or "h5" (HDF5 file with a float32
    dataset "depth": MegaDepth). ``depth_mask_path``: an 8-bit PNG, pixels > 128 valid.

    ``image_size`` / ``depth_size``: the (H, W) the image / depth file must have, checked at load time (None: not
    checked). Without ``resize_to`` the camera is for ``image_size``. ``resize_to``: the (H, W) the camera is for when
    the files are another size (ScanNet's colour and depth): the image is resized to it with Pillow's bicubic filter
    (antialiased when shrinking), the depth by nearest neighbour (valid and invalid depth are never blended).
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
    depth_size: tuple[int, int] | None = None
    resize_to: tuple[int, int] | None = None
    depth_index: int | None = None


@dataclasses.dataclass(frozen=True)
class SceneRecord:
    name: str
    frames: tuple[FrameRecord, ...]


class FileSceneSource:
    """A scene source over files described by ``SceneRecord``s (what the readers in ``vggt_jax.data.readers``
    produce).

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
            expected = "its camera is for" if rec.resize_to is None else "the layout's images are"
            raise DataError(
                scene.name,
                rec.name,
                f"image is {image.shape[1]}x{image.shape[0]} but {expected} "
                f"{rec.image_size[1]}x{rec.image_size[0]} (WxH)",
            )
        if rec.resize_to is not None:
            image = resize_image(image, rec.resize_to)
        if rec.depth_format is None:
            depth = np.zeros(image.shape[:2], np.float32)
        else:
            depth = read_depth(rec, scene.name)
            if rec.depth_size is not None and depth.shape != tuple(rec.depth_size):
                raise DataError(
                    scene.name,
                    rec.name,
                    f"depth map is {depth.shape[1]}x{depth.shape[0]} but the layout's depth maps are "
                    f"{rec.depth_size[1]}x{rec.depth_size[0]} (WxH)",
                )
            if rec.resize_to is not None:
                depth = resize_depth(depth, rec.resize_to)
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
        elif rec.depth_format == "npy_stack":
            depth = np.array(np.load(path, mmap_mode="r")[rec.depth_index], np.float32)
        elif rec.depth_format == "colmap_bin":
            from vggt_jax.geometry import colmap_io

            depth = colmap_io.read_array(path).astype(np.float32)
        elif rec.depth_format == "co3d_png":
            from vggt_jax.data.readers import co3d

            depth = co3d.read_depth_png(path, rec.depth_scale)
        elif rec.depth_format == "png_u16":
            depth = read_png_depth(path, rec.depth_scale)
        elif rec.depth_format == "h5":
            depth = read_h5_depth(path)
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


def scene_folders(root: str | Path, is_scene) -> list[Path]:
    """``[root]`` if ``is_scene(root)``, else the sub-folders of ``root`` for which ``is_scene`` holds, sorted by name
    (a dataset root of several scenes)."""
    root = Path(root)
    if is_scene(root):
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    return sorted(p for p in root.iterdir() if p.is_dir() and is_scene(p))


def require_files(files, scene: str, frame: str | None) -> None:
    """Raise ``DataError`` naming the first missing file of ``files`` (``(kind, path)`` pairs; None paths skipped)."""
    for kind, path in files:
        if path is not None and not Path(path).exists():
            raise DataError(scene, frame, f"{kind} file {path} is missing")


def load_each(folders, load, on_error: str, wanted=None) -> list[SceneRecord]:
    """``load(folder)`` for each folder (those for which ``wanted(folder)`` holds, if given); a ``DataError`` is
    raised or, with ``on_error="skip"``, logged and the scene dropped. What every reader of a dataset root does."""
    records = []
    for folder in folders:
        if wanted is not None and not wanted(folder):
            continue
        try:
            records.append(load(folder))
        except DataError as e:
            report(e, on_error)
    return records


def resize_image(image: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[h, w, 3]`` (Pillow bicubic, antialiased when shrinking); unchanged if already so."""
    height, width = (int(x) for x in size_hw)
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def resize_depth(depth: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """``[H, W]`` float32 -> ``[h, w]`` by nearest neighbour (each output pixel centre takes the source pixel under
    it), so invalid (0) depth never blends into valid depth; unchanged if already that size."""
    height, width = (int(x) for x in size_hw)
    if depth.shape == (height, width):
        return depth
    resized = Image.fromarray(np.asarray(depth, np.float32)).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized, np.float32)


# ------------------------------------------------------------------------------------ formats shared by the readers
_PNG_16BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


def read_png_depth(path: str | Path, scale: float) -> np.ndarray:
    """A 16-bit PNG of integer depth -> ``[H, W]`` float32 ``value * scale`` (0 stays 0: invalid). Raises ValueError
    for an 8-bit or colour PNG (a wrong file, not a depth map)."""
    with Image.open(path) as img:
        if img.mode not in _PNG_16BIT_MODES:
            raise ValueError(f"not a 16-bit single-channel PNG (Pillow mode {img.mode})")
        values = np.asarray(img)
    if values.min() < 0 or values.max() > 65535:
        raise ValueError("values outside the 16-bit range")
    return values.astype(np.float32) * np.float32(scale)


def write_png_depth(path: str | Path, depth: np.ndarray, scale: float) -> None:
    """Write ``depth [H, W]`` (0 = invalid) as a 16-bit PNG of ``round(depth / scale)``; raises ValueError where that
    exceeds 65535 (the format cannot hold it)."""
    values = np.round(np.asarray(depth, np.float64) / scale)
    if values.max(initial=0) > 65535 or values.min(initial=0) < 0:
        raise ValueError(f"depth {np.max(depth)} does not fit a 16-bit PNG at {scale} per unit")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)


def read_h5_depth(path: str | Path) -> np.ndarray:
    """The float32 dataset "depth" of an HDF5 file (MegaDepth) -> ``[H, W]`` float32."""
    import h5py

    with h5py.File(path, "r") as f:
        if "depth" not in f:
            raise ValueError(f"no dataset 'depth' (it holds {sorted(f.keys())})")
        depth = np.asarray(f["depth"][()], np.float32)
    if depth.ndim != 2:
        raise ValueError(f"dataset 'depth' has shape {depth.shape}, not [H, W]")
    return depth


def parse_matrix(text: str, shape: tuple[int, int]) -> np.ndarray:
    """Whitespace-separated numbers (``np.savetxt``'s format; row breaks are not required) -> float64 ``shape``;
    raises ValueError for text that is not numbers or holds another count. Non-finite values (-inf, nan) are kept."""
    values = np.array(text.split(), dtype=np.float64)
    if values.size != shape[0] * shape[1]:
        raise ValueError(f"holds {values.size} numbers, not a {shape[0]}x{shape[1]} matrix")
    return values.reshape(shape)


def read_matrix(path: str | Path, shape: tuple[int, int], scene: str, frame: str | None, what: str) -> np.ndarray:
    """A text matrix file (``parse_matrix``) that must be finite; a missing, malformed or non-finite one raises
    ``DataError`` naming ``what`` (e.g. "pose"), the file, the scene and the frame."""
    try:
        matrix = parse_matrix(Path(path).read_text(), shape)
    except FileNotFoundError:
        raise DataError(scene, frame, f"{what} file {path} is missing") from None
    except (OSError, ValueError) as e:
        raise DataError(scene, frame, f"{what} file {path} is not a {shape[0]}x{shape[1]} matrix ({e})") from None
    if not np.isfinite(matrix).all():
        raise DataError(scene, frame, f"{what} file {path} holds non-finite values ({matrix[0].tolist()}...)")
    return matrix


def write_matrix(path: str | Path, matrix: np.ndarray, fmt: str = "%.17g") -> None:
    """Write a matrix as text, one row per line (parent folders created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.atleast_2d(matrix), fmt=fmt)


# ------------------------------------------------------------------------------------------------------ poses
POSE_KINDS = ("camera_to_world", "world_to_camera")
CAMERA_AXES = ("opencv", "opengl")
# OpenGL camera axes (x right, y up, z backward: ARKit, Blender, NeRF) are OpenCV's with y and z negated.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def is_rotation(rot: np.ndarray, tol: float = 1e-4) -> bool:
    """Orthonormal within ``tol`` (what 6-decimal text poses keep) with determinant +1."""
    return bool(np.abs(rot @ rot.T - np.eye(3)).max() <= tol and np.linalg.det(rot) > 0)


def pose_to_extrinsic(matrix: np.ndarray, pose: str = "camera_to_world", axes: str = "opencv") -> np.ndarray:
    """A rigid ``[4, 4]`` (or ``[3, 4]``) pose -> this project's extrinsic ``[3, 4]`` (camera-from-world, OpenCV axes).

    ``pose``: "camera_to_world" (columns are the camera axes and centre in world coordinates) or "world_to_camera".
    ``axes``: the camera axes the pose uses, "opencv" or "opengl". Raises ValueError for a matrix that is not rigid.
    """
    if pose not in POSE_KINDS or axes not in CAMERA_AXES:
        raise ValueError(f"pose must be one of {POSE_KINDS} and axes one of {CAMERA_AXES}, got {pose!r}, {axes!r}")
    m = np.asarray(matrix, np.float64)
    if m.shape == (4, 4) and np.abs(m[3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-6:
        raise ValueError(f"the last row is {m[3].tolist()}, not [0, 0, 0, 1]")
    if m.shape not in ((4, 4), (3, 4)) or not is_rotation(m[:3, :3]):
        raise ValueError(f"not a rigid transform (rotation not orthonormal or det < 0): {m.tolist()}")
    ext = m[:3] if pose == "world_to_camera" else closed_form_inverse_se3(m)[:3]
    return _GL_TO_CV @ ext if axes == "opengl" else ext


def extrinsic_to_pose(extrinsic: np.ndarray, pose: str = "camera_to_world", axes: str = "opencv") -> np.ndarray:
    """The inverse of ``pose_to_extrinsic``: an extrinsic ``[3, 4]`` -> a ``[4, 4]`` pose in ``pose`` / ``axes``."""
    if pose not in POSE_KINDS or axes not in CAMERA_AXES:
        raise ValueError(f"pose must be one of {POSE_KINDS} and axes one of {CAMERA_AXES}, got {pose!r}, {axes!r}")
    ext = np.asarray(extrinsic, np.float64)
    ext = _GL_TO_CV @ ext if axes == "opengl" else ext
    return closed_form_inverse_se3(ext) if pose == "camera_to_world" else np.vstack([ext, [0.0, 0.0, 0.0, 1.0]])
