"""COLMAP models through pycolmap (COLMAP's own bindings), and COLMAP's dense array format.

pycolmap reads and writes the sparse model (``.bin`` or ``.txt``; legacy models without ``rigs``/``frames`` files
read as one trivial rig per camera) and runs bundle adjustment (``vggt_jax.reconstruct``). This module holds the
conversions between its objects and this project's conventions (``vggt_jax.geometry.cameras``), the one place
where they are written down:

* an image's ``cam_from_world`` is camera-from-world with OpenCV axes, as our extrinsics (``image_extrinsic``,
  ``rigid``);
* COLMAP puts the centre of pixel (row i, col j) at ``(j + 0.5, i + 0.5)``, this project at ``(j, i)``: the principal
  point moves by -0.5 px into our intrinsics (``camera_intrinsic``) and by +0.5 px out (``colmap_camera``); 2D
  observations (``Point2D.xy``) are in COLMAP's convention (``to_colmap_pixels``);
* dense arrays (``stereo/depth_maps/*.bin``, camera z) have no pycolmap reader: ``read_array`` / ``write_array``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pycolmap

from vggt_jax.geometry.cameras import intrinsics_to_corner_convention

# The camera models whose parameters are a focal length (or two), a principal point and radial terms that this
# project can hold as a pinhole with zero distortion, or bundle-adjust (``vggt_jax.reconstruct``).
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL")
# Models that are a pinhole camera when their distortion parameters are 0 (fisheye models are not).
_PINHOLE_WHEN_UNDISTORTED = frozenset(PINHOLE_MODELS + ("RADIAL", "OPENCV", "FULL_OPENCV"))


# ------------------------------------------------------------------------------------------------------ conversions
def to_colmap_pixels(xy: np.ndarray) -> np.ndarray:
    """Pixel positions ``[..., 2]`` on this project's grid -> COLMAP's (centres at +0.5)."""
    return np.asarray(xy, np.float64) + 0.5


def camera_parameters(camera: pycolmap.Camera) -> tuple[np.ndarray, np.ndarray]:
    """``([3, 3] intrinsics in this project's pixel convention, [E] distortion parameters)`` of a camera."""
    params = np.asarray(camera.params, np.float64)
    focal = params[list(camera.focal_length_idxs())]
    fx, fy = (focal[0], focal[0]) if len(focal) == 1 else focal
    cx, cy = params[list(camera.principal_point_idxs())]
    extra = params[list(camera.extra_params_idxs())]
    return np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]]), extra


def camera_intrinsic(camera: pycolmap.Camera) -> np.ndarray:
    """``[3, 3]`` intrinsics in this project's pixel convention; raises ValueError for a camera that is not a
    pinhole (a distortion != 0, or a fisheye model)."""
    intrinsic, extra = camera_parameters(camera)
    if camera.model_name not in _PINHOLE_WHEN_UNDISTORTED or np.any(extra != 0):
        raise ValueError(
            f"camera {camera.camera_id} ({camera.model_name}) is not a pinhole camera (distortion {extra.tolist()}); "
            "undistort the images first (colmap image_undistorter) to get a PINHOLE model"
        )
    return intrinsic


def colmap_camera(
    camera_id: int,
    intrinsic: np.ndarray,
    width: int,
    height: int,
    model: str = "PINHOLE",
    radial: float = 0.0,
) -> pycolmap.Camera:
    """The COLMAP camera of a ``[3, 3]`` intrinsic in this project's pixel convention.

    ``model``: PINHOLE (``fx fy cx cy``), SIMPLE_PINHOLE (``f cx cy``, f the mean of fx and fy) or SIMPLE_RADIAL
    (``f cx cy k``, with ``k = radial``).
    """
    k = intrinsics_to_corner_convention(np.asarray(intrinsic, np.float64))
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if model == "PINHOLE":
        params = [fx, fy, cx, cy]
    elif model == "SIMPLE_PINHOLE":
        params = [(fx + fy) / 2, cx, cy]
    elif model == "SIMPLE_RADIAL":
        params = [(fx + fy) / 2, cx, cy, radial]
    else:
        raise ValueError(f"camera model {model!r} is not one of {', '.join(PINHOLE_MODELS)}")
    return pycolmap.Camera(model=model, width=int(width), height=int(height), params=params, camera_id=int(camera_id))


def rigid(extrinsic: np.ndarray) -> pycolmap.Rigid3d:
    """A camera-from-world ``[3, 4]`` extrinsic as COLMAP's ``cam_from_world``."""
    return pycolmap.Rigid3d(np.asarray(extrinsic, np.float64))


def image_extrinsic(image: pycolmap.Image) -> np.ndarray:
    """The camera-from-world ``[3, 4]`` extrinsic of a registered image."""
    return np.asarray(image.cam_from_world().matrix(), np.float64)


# ---------------------------------------------------------------------------------------------------- sparse model
def new_reconstruction(
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    image_sizes_hw: np.ndarray,
    names: list[str],
    *,
    keypoints: list[np.ndarray] | None = None,
    camera_model: str = "PINHOLE",
    shared_camera: bool = False,
    radial: np.ndarray | None = None,
) -> pycolmap.Reconstruction:
    """A reconstruction of registered images and no points: image ``k + 1`` named ``names[k]`` at
    ``extrinsics [S, 3, 4]`` with ``intrinsics [S, 3, 3]`` (this project's pixel grid, image size
    ``image_sizes_hw [S, 2]``); ``keypoints``: per image ``[N_k, 2]`` 2D points in COLMAP's pixel convention
    (observations are added with the points). ``shared_camera``: one camera (frame 0's, focal lengths averaged
    over frames) for every image, all of one size. ``radial [S]``: SIMPLE_RADIAL's coefficient per frame (0)."""
    count = len(extrinsics)
    sizes = np.asarray(image_sizes_hw, np.int64)
    if shared_camera and len({tuple(s) for s in sizes}) > 1:
        raise ValueError(
            "shared_camera needs images of one size; these differ: " + str(sorted({tuple(s) for s in sizes}))
        )
    rec = pycolmap.Reconstruction()
    if shared_camera:
        shared = np.array(intrinsics[0], np.float64)
        shared[0, 0], shared[1, 1] = np.mean(intrinsics[:, 0, 0]), np.mean(intrinsics[:, 1, 1])
        k0 = 0.0 if radial is None else float(radial[0])
        rec.add_camera_with_trivial_rig(colmap_camera(1, shared, sizes[0, 1], sizes[0, 0], camera_model, k0))
    for k in range(count):
        camera_id = 1 if shared_camera else k + 1
        if not shared_camera:
            k1 = 0.0 if radial is None else float(radial[k])
            rec.add_camera_with_trivial_rig(
                colmap_camera(camera_id, intrinsics[k], sizes[k, 1], sizes[k, 0], camera_model, k1)
            )
        xy = np.zeros((0, 2)) if keypoints is None else np.asarray(keypoints[k], np.float64).reshape(-1, 2)
        image = pycolmap.Image(name=names[k], keypoints=xy, camera_id=camera_id, image_id=k + 1)
        rec.add_image_with_trivial_frame(image, rigid(extrinsics[k]))
    return rec


def add_points(
    rec: pycolmap.Reconstruction,
    xyz: np.ndarray,
    rgb: np.ndarray,
    image_ids: np.ndarray,
    point2d_idxs: np.ndarray,
    track_starts: np.ndarray | None = None,
) -> np.ndarray:
    """Add ``P`` points ``xyz [P, 3]``, ``rgb [P, 3]`` uint8 observed at ``(image_ids, point2d_idxs) [T]`` (keypoint
    indices of ``new_reconstruction``'s ``keypoints``); point ``p``'s observations are entries
    ``track_starts[p]:track_starts[p + 1]`` (default: one each). Returns the new point ids ``[P]``."""
    count = len(xyz)
    starts = np.arange(count + 1) if track_starts is None else np.asarray(track_starts)
    ids = np.empty(count, np.int64)
    xyz, rgb = np.asarray(xyz, np.float64), np.asarray(rgb, np.uint8)
    image_ids, point2d_idxs = np.asarray(image_ids).tolist(), np.asarray(point2d_idxs).tolist()
    for p in range(count):
        track = pycolmap.Track()
        for t in range(starts[p], starts[p + 1]):
            track.add_element(image_ids[t], point2d_idxs[t])
        ids[p] = rec.add_point3D(xyz[p], track, rgb[p])
    return ids


def read_model(path: str | os.PathLike) -> pycolmap.Reconstruction:
    """The model in the folder ``path`` (``.bin`` or ``.txt``); raises FileNotFoundError or ValueError naming it."""
    path = Path(path)
    if not any((path / f"cameras.{ext}").exists() for ext in ("bin", "txt")):
        raise FileNotFoundError(f"no COLMAP model (cameras.bin or cameras.txt) in {path}")
    try:
        return pycolmap.Reconstruction(str(path))
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"cannot read the COLMAP model in {path}: {e}") from None


def check_text_names(names: list[str]) -> None:
    """COLMAP's text format splits lines on whitespace, so an image name with a space cannot be read back."""
    spaced = [n for n in names if any(c.isspace() for c in n)]
    if spaced:
        raise ValueError(f"COLMAP's text format splits on whitespace: rename {spaced} or use the binary format")


def model_files(rec: pycolmap.Reconstruction, fmt: Literal["bin", "txt"] = "bin") -> dict[str, bytes]:
    """The model's files (cameras, images, points3D, rigs, frames) as ``{name: bytes}``, written by COLMAP."""
    if fmt == "txt":
        check_text_names([im.name for im in rec.images.values()])
    with tempfile.TemporaryDirectory(prefix="vggt_colmap_") as tmp:
        (rec.write_binary if fmt == "bin" else rec.write_text)(tmp)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}


# ------------------------------------------------------------------------------------------------------ dense arrays
def read_array(path: str | Path) -> np.ndarray:
    """A COLMAP dense array (``W&H&C&`` text header, then float32 column-major data) -> ``[H, W]`` or ``[H, W, C]``."""
    with open(path, "rb") as f:
        header = b""
        while header.count(b"&") < 3:
            char = f.read(1)
            if not char:
                raise ValueError(f"{path} has no 'W&H&C&' header")
            header += char
        width, height, channels = (int(x) for x in header.split(b"&")[:3])
        data = np.fromfile(f, dtype="<f4")
    if data.size != width * height * channels:
        raise ValueError(f"{path} holds {data.size} values, its header says {width}x{height}x{channels}")
    array = np.transpose(data.reshape((width, height, channels), order="F"), (1, 0, 2))
    return array[..., 0] if channels == 1 else array


def write_array(path: str | Path, array: np.ndarray) -> None:
    """Write ``[H, W]`` or ``[H, W, C]`` float data in COLMAP's dense array format (parent folders created)."""
    array = np.asarray(array, dtype="<f4")
    arr3 = array[..., None] if array.ndim == 2 else array
    height, width, channels = arr3.shape
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(f"{width}&{height}&{channels}&".encode())
        f.write(np.transpose(arr3, (1, 0, 2)).reshape(-1, order="F").tobytes())
