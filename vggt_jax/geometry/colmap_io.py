"""COLMAP's file formats: the sparse model (cameras, images, points3D; ``.bin`` or ``.txt``) and dense arrays.

Written with numpy from the format's specification (https://colmap.github.io/format.html, COLMAP's
``reconstruction_io``), so neither reading nor writing needs pycolmap; COLMAP >= 3.12 and pycolmap read what is
written here as a legacy model (no ``rigs``/``frames`` files: one trivial rig per camera). The training data readers
(``vggt_jax.data.readers.colmap``) and the inference exporter (``vggt_jax.inference.exports.colmap``) both use it.

Conventions, and the conversions to this project's (``vggt_jax.geometry.cameras``):

* an image's pose (``qvec``, ``tvec``) is camera-from-world with OpenCV axes, as our extrinsics; ``qvec`` is WXYZ
  (scalar first) where this project's quaternions are XYZW: ``image_extrinsic`` / ``image_entry`` convert.
* COLMAP puts the centre of pixel (row i, col j) at ``(j + 0.5, i + 0.5)``, this project at ``(j, i)``: the principal
  point moves by -0.5 px into our intrinsics (``camera_intrinsic``) and by +0.5 px out (``pinhole_camera``); 2D
  observations (``ImageEntry.xys``) are stored in COLMAP's convention.
* dense arrays (``stereo/depth_maps/*.bin``) hold camera z for depth maps.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

from vggt_jax.geometry.cameras import intrinsics_to_corner_convention
from vggt_jax.geometry.rotation import mat_to_quat, quat_to_mat, quat_wxyz_to_xyzw, quat_xyzw_to_wxyz

# model id -> (name, number of params)
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}
_SINGLE_FOCAL = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"}
_POINT2D = np.dtype([("xy", "<f8", 2), ("point3d_id", "<i8")])  # -1 (no 3D point) is COLMAP's 2^64 - 1
_POINT3D = [("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("error", "<f8"), ("track_length", "<u8")]


@dataclasses.dataclass
class Camera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray


@dataclasses.dataclass
class ImageEntry:
    id: int
    qvec: np.ndarray  # [4] WXYZ, camera-from-world
    tvec: np.ndarray  # [3]
    camera_id: int
    name: str
    xys: np.ndarray  # [N, 2] keypoints, COLMAP's pixel convention
    point3d_ids: np.ndarray  # [N] int, -1 = no 3D point


@dataclasses.dataclass
class Points3D:
    """``P`` points as columns (exports hold millions): ``ids [P]``, ``xyz [P, 3]`` float64, ``rgb [P, 3]`` uint8,
    ``errors [P]`` float64 (-1: not computed), ``track_lengths [P]``; the tracks one after another in
    ``track_image_ids [T]`` and ``track_point2d_idxs [T]`` (``T = sum(track_lengths)``)."""

    ids: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    errors: np.ndarray
    track_lengths: np.ndarray
    track_image_ids: np.ndarray
    track_point2d_idxs: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> Points3D:
        ints = np.zeros(0, np.int64)
        return cls(ints, np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0), ints, ints, ints)


# ------------------------------------------------------------------------------------------------------ conversions
def camera_intrinsic(camera: Camera) -> np.ndarray:
    """``[3, 3]`` intrinsics in this project's pixel convention; raises ValueError for a distortion != 0."""
    p = camera.params
    if camera.model in _SINGLE_FOCAL:
        fx = fy = p[0]
        cx, cy, rest = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, rest = p[0], p[1], p[2], p[3], p[4:]
    if np.any(rest != 0):
        raise ValueError(
            f"camera {camera.id} ({camera.model}) has distortion {rest.tolist()}; undistort the images first "
            "(colmap image_undistorter) to get a PINHOLE model"
        )
    return np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])


def pinhole_camera(camera_id: int, intrinsic: np.ndarray, width: int, height: int) -> Camera:
    """The PINHOLE camera (``fx fy cx cy``) of a ``[3, 3]`` intrinsic in this project's pixel convention."""
    params = intrinsics_to_corner_convention(np.asarray(intrinsic, np.float64))[[0, 1, 0, 1], [0, 1, 2, 2]]
    return Camera(camera_id, "PINHOLE", int(width), int(height), params)


def image_extrinsic(image: ImageEntry) -> np.ndarray:
    """The camera-from-world ``[3, 4]`` extrinsic of an image's pose."""
    rotation = quat_to_mat(quat_wxyz_to_xyzw(np.asarray(image.qvec, np.float64)))
    return np.concatenate([rotation, np.asarray(image.tvec, np.float64)[:, None]], axis=1)


def image_entry(
    image_id: int,
    camera_id: int,
    name: str,
    extrinsic: np.ndarray,
    xys: np.ndarray | None = None,
    point3d_ids: np.ndarray | None = None,
) -> ImageEntry:
    """An image entry from a camera-from-world ``[3, 4]`` extrinsic; keypoints ``xys [N, 2]`` (COLMAP's pixel
    convention) observing ``point3d_ids [N]``, none by default."""
    extrinsic = np.asarray(extrinsic, np.float64)
    qvec = quat_xyzw_to_wxyz(mat_to_quat(extrinsic[:, :3]))
    xys = np.zeros((0, 2)) if xys is None else xys
    point3d_ids = np.zeros(0, np.int64) if point3d_ids is None else point3d_ids
    return ImageEntry(image_id, qvec, extrinsic[:, 3], camera_id, name, xys, point3d_ids)


# ---------------------------------------------------------------------------------------------------- sparse model
def read_model(path: str | Path) -> tuple[dict[int, Camera], dict[int, ImageEntry], Points3D]:
    """``({id: Camera}, {id: ImageEntry}, Points3D)`` from a folder with cameras/images/points3D ``.bin`` or
    ``.txt`` (a missing points3D file reads as no points)."""
    path = Path(path)
    for ext, (read_cameras, read_images, read_points) in _READERS.items():
        if (path / f"cameras.{ext}").exists():
            points_file = path / f"points3D.{ext}"
            points = read_points(points_file) if points_file.exists() else Points3D.empty()
            return read_cameras(path / f"cameras.{ext}"), read_images(path / f"images.{ext}"), points
    raise FileNotFoundError(f"no COLMAP model (cameras.bin or cameras.txt) in {path}")


def model_files(
    cameras: dict[int, Camera], images: dict[int, ImageEntry], points: Points3D, binary: bool = True
) -> dict[str, bytes]:
    """The three files of a model as ``{name: bytes}`` (``.bin`` if ``binary``, else ``.txt``), in dict order."""
    ext = "bin" if binary else "txt"
    write_cameras, write_images, write_points = _WRITERS[ext]
    return {
        f"cameras.{ext}": write_cameras(cameras),
        f"images.{ext}": write_images(images),
        f"points3D.{ext}": write_points(points),
    }


def write_model(
    path: str | Path, cameras: dict[int, Camera], images: dict[int, ImageEntry], points: Points3D, binary: bool = True
) -> None:
    """Write a model (``model_files``) into the folder ``path``, created if needed."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, content in model_files(cameras, images, points, binary).items():
        (path / name).write_bytes(content)


def _read(f, fmt: str):
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))


def _read_cameras_bin(path: Path) -> dict[int, Camera]:
    cameras = {}
    with open(path, "rb") as f:
        for _ in range(_read(f, "Q")[0]):
            cam_id, model_id, width, height = _read(f, "iiQQ")
            name, n = CAMERA_MODELS[model_id]
            cameras[cam_id] = Camera(cam_id, name, width, height, np.array(_read(f, "d" * n)))
    return cameras


def _read_images_bin(path: Path) -> dict[int, ImageEntry]:
    images = {}
    with open(path, "rb") as f:
        for _ in range(_read(f, "Q")[0]):
            values = _read(f, "idddddddi")
            name = b""
            while (char := f.read(1)) != b"\x00":
                name += char
            (n,) = _read(f, "Q")
            pts = np.frombuffer(f.read(_POINT2D.itemsize * n), dtype=_POINT2D)
            images[values[0]] = ImageEntry(
                values[0],
                np.array(values[1:5]),
                np.array(values[5:8]),
                values[8],
                name.decode("utf-8"),
                pts["xy"].copy(),
                pts["point3d_id"].copy(),
            )
    return images


def _read_points_bin(path: Path) -> Points3D:
    rows, tracks = [], []
    with open(path, "rb") as f:
        for _ in range(_read(f, "Q")[0]):
            rows.append(_read(f, "QdddBBBdQ"))
            tracks.append(np.frombuffer(f.read(8 * rows[-1][-1]), dtype="<i4").reshape(-1, 2))
    return _points_from_rows(rows, tracks)


def _points_from_rows(rows: list[tuple], tracks: list[np.ndarray]) -> Points3D:
    """Rows ``(id, x, y, z, r, g, b, error, track_length)`` and each row's track ``[n, 2]`` (image id, point2D idx)."""
    if not rows:
        return Points3D.empty()
    table = np.array(rows, dtype=np.float64)
    track = np.concatenate(tracks).astype(np.int64)
    return Points3D(
        np.array([r[0] for r in rows], np.int64),  # not through float64: ids are 64-bit
        table[:, 1:4],
        table[:, 4:7].astype(np.uint8),
        table[:, 7],
        table[:, 8].astype(np.int64),
        track[:, 0],
        track[:, 1],
    )


def _cameras_bin(cameras: dict[int, Camera]) -> bytes:
    out = [struct.pack("<Q", len(cameras))]
    for cam in cameras.values():
        out.append(struct.pack("<iiQQ", cam.id, MODEL_IDS[cam.model][0], cam.width, cam.height))
        out.append(np.asarray(cam.params, "<f8").tobytes())
    return b"".join(out)


def _images_bin(images: dict[int, ImageEntry]) -> bytes:
    out = [struct.pack("<Q", len(images))]
    for im in images.values():
        out.append(struct.pack("<idddddddi", im.id, *im.qvec, *im.tvec, im.camera_id))
        out.append(im.name.encode("utf-8") + b"\x00")
        pts = np.empty(len(im.xys), _POINT2D)
        pts["xy"], pts["point3d_id"] = im.xys, im.point3d_ids
        out += [struct.pack("<Q", len(pts)), pts.tobytes()]
    return b"".join(out)


def _points_bin(points: Points3D) -> bytes:
    lengths = np.asarray(points.track_lengths)
    track = np.stack([points.track_image_ids, points.track_point2d_idxs], axis=-1).astype("<i4")
    # One track length for all (an export: millions of points, length 1) makes one fixed-size record per point.
    uniform = int(lengths[0]) if len(lengths) and (lengths == lengths[0]).all() else 0
    table = np.empty(len(points), np.dtype(_POINT3D + ([("track", "<i4", (uniform, 2))] if uniform else [])))
    table["id"], table["xyz"], table["rgb"] = points.ids, points.xyz, points.rgb
    table["error"], table["track_length"] = points.errors, lengths
    count = struct.pack("<Q", len(points))
    if uniform:
        table["track"] = track.reshape(-1, uniform, 2)
        return count + table.tobytes()
    ends = np.cumsum(lengths)
    return count + b"".join(
        row.tobytes() + track[end - n : end].tobytes() for row, n, end in zip(table, lengths, ends, strict=True)
    )


# ------------------------------------------------------------------------------------------------------ text format
def _data_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _read_cameras_txt(path: Path) -> dict[int, Camera]:
    cameras = {}
    for line in _data_lines(path):
        e = line.split()
        cameras[int(e[0])] = Camera(int(e[0]), e[1], int(e[2]), int(e[3]), np.array([float(x) for x in e[4:]]))
    return cameras


def _read_images_txt(path: Path) -> dict[int, ImageEntry]:
    images = {}
    # Two lines per image; the keypoint line may be empty, so blank lines cannot simply be dropped.
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    while lines and not lines[-1].strip():
        lines.pop()
    for head, points in zip(lines[0::2], lines[1::2] + [""] * (len(lines) % 2), strict=True):
        e = head.split()
        p = np.array(points.split(), dtype=np.float64).reshape(-1, 3)
        images[int(e[0])] = ImageEntry(
            int(e[0]),
            np.array(e[1:5], np.float64),
            np.array(e[5:8], np.float64),
            int(e[8]),
            " ".join(e[9:]),
            p[:, :2],
            p[:, 2].astype(np.int64),
        )
    return images


def _read_points_txt(path: Path) -> Points3D:
    rows, tracks = [], []
    for line in _data_lines(path):
        e = line.split()
        track = np.array(e[8:], dtype=np.int64).reshape(-1, 2)
        rows.append((int(e[0]), *(float(x) for x in e[1:4]), *(int(x) for x in e[4:7]), float(e[7]), len(track)))
        tracks.append(track)
    return _points_from_rows(rows, tracks)


def _num(value) -> str:
    """Shortest round-trip form: the text model is as exact as the binary one."""
    return repr(float(value))


def _short(value) -> str:
    """As ``_num``, but whole numbers without ``.0`` (``-1`` for an error not computed, as COLMAP writes it)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _encode(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def _cameras_txt(cameras: dict[int, Camera]) -> bytes:
    lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(cameras)}",
    ]
    for c in cameras.values():
        lines.append(f"{c.id} {c.model} {c.width} {c.height} " + " ".join(_num(p) for p in c.params))
    return _encode(lines)


def _images_txt(images: dict[int, ImageEntry]) -> bytes:
    observations = sum(len(im.xys) for im in images.values())
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(images)}, mean observations per image: {observations / max(len(images), 1)}",
    ]
    for im in images.values():
        pose = " ".join(_num(v) for v in (*im.qvec, *im.tvec))
        lines.append(f"{im.id} {pose} {im.camera_id} {im.name}")
        xys, ids = np.asarray(im.xys).tolist(), np.asarray(im.point3d_ids).tolist()
        lines.append(" ".join(f"{_num(x)} {_num(y)} {i}" for (x, y), i in zip(xys, ids, strict=True)))
    return _encode(lines)


def _points_txt(points: Points3D) -> bytes:
    lengths = np.asarray(points.track_lengths).tolist()
    mean_track = sum(lengths) / len(lengths) if lengths else 0
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(points)}, mean track length: {_short(mean_track)}",
    ]
    track = np.stack([points.track_image_ids, points.track_point2d_idxs], axis=-1).tolist()
    columns = (points.ids.tolist(), points.xyz.tolist(), points.rgb.tolist(), points.errors.tolist(), lengths)
    start = 0
    for i, (x, y, z), (r, g, b), error, n in zip(*columns, strict=True):
        observed = " ".join(f"{image_id} {idx}" for image_id, idx in track[start : start + n])
        start += n
        lines.append(f"{i} {_num(x)} {_num(y)} {_num(z)} {r} {g} {b} {_short(error)} {observed}".rstrip())
    return _encode(lines)


_READERS = {
    "bin": (_read_cameras_bin, _read_images_bin, _read_points_bin),
    "txt": (_read_cameras_txt, _read_images_txt, _read_points_txt),
}
_WRITERS = {"bin": (_cameras_bin, _images_bin, _points_bin), "txt": (_cameras_txt, _images_txt, _points_txt)}


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
