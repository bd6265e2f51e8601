"""Cameras the user already knows (``infer.py --intrinsics``): read them, and make the predictions agree with them.

Sources (``read_intrinsics``), each giving ``[S, 3, 3]`` pinhole matrices in the ORIGINAL images' pixels:

* a COLMAP ``cameras.txt`` (``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``, COLMAP's convention: pixel centres at
  +0.5). Models SIMPLE_PINHOLE and PINHOLE, or a distortion model whose distortion parameters are all 0 (an
  undistorted camera). An image gets the camera of its size; when several cameras have that size, an
  ``images.txt`` beside the file says which image uses which.
* a JSON file in OpenCV's convention (pixel centres at integers, as ``cv2.calibrateCamera`` gives): one object
  ``{"fx", "fy", "cx", "cy"}`` shared by every image (``cx``/``cy`` may be left out: the image centre), or one
  such object per image name ``{"IMG_0001.jpg": {...}, ...}``.
* ``exif``: each image's EXIF focal length in 35 mm film (tag FocalLengthIn35mmFilm), converted over the diagonal
  (a 3:2 image's long side is 36 mm), principal point at the image centre.

Every problem raises ``IntrinsicsError`` (an ``ImageInputError``) naming the file, the image and the field.

``apply_known_intrinsics``: the predicted focal length ``f`` gives way to the known ``f'``; the depth is scaled by
``f' / f`` (per frame, the mean of x and y), which keeps each pixel's lateral position where the model put it (a
narrower field of view seeing the same image means the scene is farther away), so depth, points and the predicted
camera motion stay consistent; the points are unprojected again with the known cameras. The point head's own
``world_points`` are left as predicted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vggt_jax.inference.preprocess import ImageInputError

EXIF_IFD = 0x8769
FOCAL_35MM = 0xA405  # FocalLengthIn35mmFilm
FILM_DIAGONAL_MM = math.hypot(36.0, 24.0)
_PARAMS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8, "FULL_OPENCV": 12}


class IntrinsicsError(ImageInputError):
    """Known intrinsics that cannot be used; the message names the file, the image and the field."""


def _matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _check(k: np.ndarray, hw, where: str) -> np.ndarray:
    height, width = hw
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if not (np.isfinite(k).all() and fx > 0 and fy > 0):
        raise IntrinsicsError(f"{where}: the focal length must be a finite number > 0 (fx={fx}, fy={fy})")
    if not (-0.5 <= cx <= width - 0.5 and -0.5 <= cy <= height - 0.5):
        raise IntrinsicsError(
            f"{where}: the principal point ({cx}, {cy}) is outside the {width}x{height} image; are these "
            "intrinsics for another image size?"
        )
    return k


def _number(value, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise IntrinsicsError(f"{where}: field {field!r} must be a finite number, got {value!r}")
    return float(value)


def _from_json_entry(entry, hw, where: str) -> np.ndarray:
    if not isinstance(entry, dict):
        raise IntrinsicsError(f"{where}: expected an object with fx, fy, cx, cy, got {type(entry).__name__}")
    unknown = set(entry) - {"fx", "fy", "cx", "cy"}
    if unknown:
        raise IntrinsicsError(f"{where}: unknown field(s) {sorted(unknown)}; the fields are fx, fy, cx, cy")
    for field in ("fx", "fy"):
        if field not in entry:
            raise IntrinsicsError(f"{where}: field {field!r} is missing (fx and fy are needed; cx, cy optional)")
    height, width = hw
    fx, fy = _number(entry["fx"], where, "fx"), _number(entry["fy"], where, "fy")
    cx = _number(entry["cx"], where, "cx") if "cx" in entry else (width - 1) / 2
    cy = _number(entry["cy"], where, "cy") if "cy" in entry else (height - 1) / 2
    return _check(_matrix(fx, fy, cx, cy), hw, where)


def _read_json(path: Path, names: list[str], sizes: np.ndarray) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntrinsicsError(f"--intrinsics {path}: not readable JSON ({e})") from e
    if not isinstance(data, dict):
        raise IntrinsicsError(f"--intrinsics {path}: expected a JSON object, got {type(data).__name__}")
    if "fx" in data:
        if len({tuple(s) for s in sizes}) > 1:
            raise IntrinsicsError(
                f"--intrinsics {path}: one shared camera for images of several sizes "
                f"({sorted({f'{w}x{h}' for h, w in sizes})}); give one entry per image name"
            )
        return np.stack([_from_json_entry(data, hw, f"--intrinsics {path}") for hw in sizes])
    missing = [n for n in names if n not in data]
    if missing:
        raise IntrinsicsError(
            f"--intrinsics {path}: no entry for image {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + '; give {"IMAGE NAME": {"fx": ..., "fy": ..., "cx": ..., "cy": ...}} for every image, or one shared '
            '{"fx": ..., "fy": ...}'
        )
    return np.stack(
        [_from_json_entry(data[n], hw, f"--intrinsics {path}, image {n!r}") for n, hw in zip(names, sizes, strict=True)]
    )


def _colmap_cameras(path: Path) -> dict[int, tuple[str, int, int, list[float]]]:
    cameras = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise IntrinsicsError(f"--intrinsics {path}: not a readable cameras.txt ({e})") from e
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        where = f"--intrinsics {path}, line {number}"
        if len(fields) < 4:
            raise IntrinsicsError(f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., got {line.strip()!r}")
        model = fields[1]
        if model not in _PARAMS:
            raise IntrinsicsError(f"{where}: camera model {model!r} is not one of {', '.join(_PARAMS)}")
        try:
            camera_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
            params = [float(v) for v in fields[4:]]
        except ValueError as e:
            raise IntrinsicsError(f"{where}: {e}") from e
        if len(params) != _PARAMS[model]:
            raise IntrinsicsError(f"{where}: {model} has {_PARAMS[model]} parameters, got {len(params)}")
        cameras[camera_id] = (model, width, height, params)
    if not cameras:
        raise IntrinsicsError(f"--intrinsics {path}: no camera in the file")
    return cameras


def _colmap_matrix(path: Path, camera_id: int, camera) -> np.ndarray:
    model, width, height, p = camera
    where = f"--intrinsics {path}, camera {camera_id}"
    if model == "SIMPLE_PINHOLE" or model in ("SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, extra = p[0], p[1], p[2], p[3], p[4:]
    if any(v != 0 for v in extra):
        raise IntrinsicsError(
            f"{where}: {model} with distortion {extra}; the model's cameras are pinhole: undistort the images "
            "first (colmap image_undistorter) and pass the undistorted cameras.txt"
        )
    return _check(_matrix(fx, fy, cx - 0.5, cy - 0.5), (height, width), where)


def _colmap_image_cameras(path: Path) -> dict[str, int]:
    """``images.txt``'s image name -> camera id. As COLMAP reads it: an image line (blank and comment lines
    skipped before it), then always its 2D points line, even when that is empty."""
    names = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 10:
            raise IntrinsicsError(f"{path}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got {line!r}")
        try:
            names[" ".join(fields[9:])] = int(fields[8])
        except ValueError as e:
            raise IntrinsicsError(f"{path}: {e}") from e
        next(lines, None)  # the image's 2D points
    return names


def _read_colmap(path: Path, names: list[str], sizes: np.ndarray) -> np.ndarray:
    cameras = _colmap_cameras(path)
    images_txt = path.with_name("images.txt")
    by_name = _colmap_image_cameras(images_txt) if images_txt.is_file() else {}
    out = []
    for name, (height, width) in zip(names, sizes, strict=True):
        if name in by_name:
            camera_id = by_name[name]
            if camera_id not in cameras:
                raise IntrinsicsError(f"{images_txt}: image {name!r} uses camera {camera_id}, not in {path}")
        else:
            fitting = [c for c, cam in cameras.items() if (cam[1], cam[2]) == (width, height)]
            distinct = {tuple(_colmap_matrix(path, c, cameras[c]).ravel()) for c in fitting}
            if not fitting:
                raise IntrinsicsError(
                    f"--intrinsics {path}: no camera of image {name!r}'s size {width}x{height} (cameras: "
                    f"{sorted({f'{cam[1]}x{cam[2]}' for cam in cameras.values()})})"
                )
            if len(distinct) > 1:
                raise IntrinsicsError(
                    f"--intrinsics {path}: cameras {fitting} all have image {name!r}'s size {width}x{height}; put "
                    "COLMAP's images.txt beside the file to say which image uses which"
                )
            camera_id = fitting[0]
        camera = cameras[camera_id]
        if (camera[1], camera[2]) != (width, height):
            raise IntrinsicsError(
                f"--intrinsics {path}: camera {camera_id} is {camera[1]}x{camera[2]}, image {name!r} {width}x{height}"
            )
        out.append(_colmap_matrix(path, camera_id, camera))
    return np.stack(out)


def exif_focal_35mm(path: str | Path) -> float | None:
    """The image's EXIF FocalLengthIn35mmFilm in mm, or None where it has none."""
    try:
        with Image.open(path) as image:
            value = image.getexif().get_ifd(EXIF_IFD).get(FOCAL_35MM)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
    try:
        value = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return value if value and math.isfinite(value) and value > 0 else None


def _read_exif(names: list[str], sizes: np.ndarray, paths: list[str | None]) -> np.ndarray:
    out = []
    for name, (height, width), path in zip(names, sizes, paths, strict=True):
        if path is None:
            raise IntrinsicsError(f"--intrinsics exif: image {name!r} is not a file (a video frame?); it has no EXIF")
        focal = exif_focal_35mm(path)
        if focal is None:
            raise IntrinsicsError(
                f"--intrinsics exif: image {name!r} has no EXIF field FocalLengthIn35mmFilm; pass a JSON or COLMAP "
                "cameras.txt file instead"
            )
        f = focal * math.hypot(width, height) / FILM_DIAGONAL_MM
        out.append(_matrix(f, f, (width - 1) / 2, (height - 1) / 2))
    return np.stack(out)


def read_intrinsics(source: str, names: list[str], sizes_hw, paths: list[str | None]) -> np.ndarray:
    """``[S, 3, 3]`` known intrinsics of the images ``names`` (original sizes ``sizes_hw [S, 2]``, files ``paths``)
    from ``source``: a COLMAP cameras.txt, a JSON file or ``"exif"`` (module docstring); this project's pixel grid."""
    sizes = np.asarray(sizes_hw, np.int64).reshape(-1, 2)
    if source == "exif":
        return _read_exif(names, sizes, paths)
    path = Path(source)
    if not path.is_file():
        raise IntrinsicsError(f"--intrinsics {source}: no such file; pass a COLMAP cameras.txt, a .json or 'exif'")
    if path.suffix.lower() == ".json":
        return _read_json(path, names, sizes)
    if path.suffix.lower() == ".txt":
        return _read_colmap(path, names, sizes)
    raise IntrinsicsError(f"--intrinsics {source}: expected a COLMAP cameras.txt (.txt) or a .json file")


def focal(k: np.ndarray) -> np.ndarray:
    return (np.asarray(k)[..., 0, 0] + np.asarray(k)[..., 1, 1]) / 2


def rescale_depth(depth: np.ndarray, predicted: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``depth [S, H, W]`` scaled per frame by known / predicted focal length (module docstring)."""
    ratio = focal(known) / focal(predicted)
    return (np.asarray(depth) * ratio[:, None, None]).astype(np.asarray(depth).dtype)


def apply_known_intrinsics(pred, known_original: np.ndarray):
    """``pred`` (``Predictions`` with metas) with the known cameras ``[S, 3, 3]`` (original pixels): intrinsics,
    depth rescaled, ``world_points_from_depth`` and ``pose_enc``'s field of view from them (module docstring)."""
    from vggt_jax.geometry import depth_to_world_points, extri_intri_to_pose_encoding

    known_original = np.asarray(known_original, np.float64)
    intrinsic = np.stack([m.intrinsics_to_processed(k) for m, k in zip(pred.metas, known_original, strict=True)])
    depth = rescale_depth(pred.depth, pred.intrinsic_original, known_original)
    points = depth_to_world_points(depth.astype(np.float64), pred.extrinsic, intrinsic)
    pose_enc = extri_intri_to_pose_encoding(pred.extrinsic[None], intrinsic[None], pred.images.shape[-2:])[0]
    return dataclasses.replace(
        pred,
        intrinsic=intrinsic.astype(pred.intrinsic.dtype),
        intrinsic_original=known_original,
        depth=depth,
        world_points_from_depth=points.astype(pred.world_points_from_depth.dtype),
        pose_enc=np.asarray(pose_enc, pred.pose_enc.dtype),
    )
