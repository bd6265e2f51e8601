"""COLMAP scene folders: the sparse model (cameras, images, points3D; .bin or .txt) and dense depth maps.

A small reader/writer of COLMAP's documented formats (https://colmap.github.io/format.html), with no dependency on
pycolmap. Expected folder layout (that of ``colmap image_undistorter`` output, or a plain SfM project)::

    scene/images/<NAME>                                   the image files, NAME as in images.bin (may hold '/')
    scene/sparse/0/{cameras,images,points3D}.{bin,txt}    or scene/sparse/...
    scene/stereo/depth_maps/<NAME>.geometric.bin          optional dense depth (COLMAP's float32 array format)

Conventions converted on reading: COLMAP's pose (qvec, tvec) is already camera-from-world with OpenCV axes, so
``[R(qvec) | tvec]`` is our extrinsic unchanged. COLMAP puts the centre of the top-left pixel at (0.5, 0.5); this
project puts it at (0, 0), so the principal point moves by -0.5 px on reading (+0.5 on writing). Depth maps store
camera z. Only pinhole-equivalent cameras are usable for training: a model with non-zero distortion is bad data
(undistort with ``colmap image_undistorter`` first).
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

from vggt_jax.data import _geometry as geo
from vggt_jax.data.sources import DataError, FrameRecord, SceneRecord, report

# model id -> (name, number of params, indices of the pinhole part (f or fx, fy, cx, cy) in params)
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
    qvec: np.ndarray  # (w, x, y, z), camera-from-world
    tvec: np.ndarray
    camera_id: int
    name: str
    xys: np.ndarray  # [N, 2] keypoints (COLMAP pixel convention)
    point3d_ids: np.ndarray  # [N] int64, -1 = no 3D point


@dataclasses.dataclass
class Point3D:
    id: int
    xyz: np.ndarray
    rgb: np.ndarray
    error: float
    image_ids: np.ndarray
    point2d_idxs: np.ndarray


# ---------------------------------------------------------------------------------------------------- binary format
def _read(f, fmt: str):
    return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))


def read_model(path: str | Path) -> tuple[dict, dict, dict]:
    """``{id: Camera}, {id: ImageEntry}, {id: Point3D}`` from a folder with cameras/images/points3D .bin or .txt."""
    path = Path(path)
    if (path / "cameras.bin").exists():
        return (
            _read_cameras_bin(path / "cameras.bin"),
            _read_images_bin(path / "images.bin"),
            _read_points_bin(path / "points3D.bin"),
        )
    if (path / "cameras.txt").exists():
        return (
            _read_cameras_txt(path / "cameras.txt"),
            _read_images_txt(path / "images.txt"),
            _read_points_txt(path / "points3D.txt"),
        )
    raise FileNotFoundError(f"no COLMAP model (cameras.bin or cameras.txt) in {path}")


def _read_cameras_bin(path: Path) -> dict:
    cameras = {}
    with open(path, "rb") as f:
        for _ in range(_read(f, "Q")[0]):
            cam_id, model_id, width, height = _read(f, "iiQQ")
            name, n = CAMERA_MODELS[model_id]
            cameras[cam_id] = Camera(cam_id, name, width, height, np.array(_read(f, "d" * n)))
    return cameras


def _read_images_bin(path: Path) -> dict:
    images = {}
    with open(path, "rb") as f:
        for _ in range(_read(f, "Q")[0]):
            values = _read(f, "idddddddi")
            name = b""
            while (char := f.read(1)) != b"\x00":
                name += char
            (n,) = _read(f, "Q")
            pts = np.frombuffer(f.read(24 * n), dtype=np.dtype([("xy", "<f8", 2), ("id", "<i8")]))
            images[values[0]] = ImageEntry(
                values[0],
                np.array(values[1:5]),
                np.array(values[5:8]),
                values[8],
                name.decode("utf-8"),
                pts["xy"].copy(),
                pts["id"].copy(),
            )
    return images


def _read_points_bin(path: Path) -> dict:
    points = {}
    if not path.exists():
        return points
    with open(path, "rb") as f:
        for _ in range(_read(f, "Q")[0]):
            values = _read(f, "QdddBBBd")
            (n,) = _read(f, "Q")
            track = np.frombuffer(f.read(8 * n), dtype="<i4").reshape(n, 2)
            points[values[0]] = Point3D(
                values[0],
                np.array(values[1:4]),
                np.array(values[4:7], np.uint8),
                values[7],
                track[:, 0].copy(),
                track[:, 1].copy(),
            )
    return points


def write_model(path: str | Path, cameras: dict, images: dict, points: dict, binary: bool = True) -> None:
    """Write a COLMAP model (the inverse of ``read_model``) as .bin (``binary``) or .txt files."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not binary:
        return _write_txt(path, cameras, images, points)
    with open(path / "cameras.bin", "wb") as f:
        f.write(struct.pack("<Q", len(cameras)))
        for cam in cameras.values():
            f.write(struct.pack("<iiQQ", cam.id, MODEL_IDS[cam.model][0], cam.width, cam.height))
            f.write(struct.pack("<" + "d" * len(cam.params), *cam.params))
    with open(path / "images.bin", "wb") as f:
        f.write(struct.pack("<Q", len(images)))
        for im in images.values():
            f.write(struct.pack("<idddddddi", im.id, *im.qvec, *im.tvec, im.camera_id))
            f.write(im.name.encode("utf-8") + b"\x00")
            f.write(struct.pack("<Q", len(im.xys)))
            pts = np.zeros(len(im.xys), dtype=np.dtype([("xy", "<f8", 2), ("id", "<i8")]))
            pts["xy"], pts["id"] = im.xys, im.point3d_ids
            f.write(pts.tobytes())
    with open(path / "points3D.bin", "wb") as f:
        f.write(struct.pack("<Q", len(points)))
        for p in points.values():
            f.write(struct.pack("<QdddBBBd", p.id, *p.xyz, *(int(c) for c in p.rgb), p.error))
            f.write(struct.pack("<Q", len(p.image_ids)))
            f.write(np.stack([p.image_ids, p.point2d_idxs], -1).astype("<i4").tobytes())


# ------------------------------------------------------------------------------------------------------ text format
def _data_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _read_cameras_txt(path: Path) -> dict:
    cameras = {}
    for line in _data_lines(path):
        e = line.split()
        cameras[int(e[0])] = Camera(int(e[0]), e[1], int(e[2]), int(e[3]), np.array([float(x) for x in e[4:]]))
    return cameras


def _read_images_txt(path: Path) -> dict:
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


def _read_points_txt(path: Path) -> dict:
    points = {}
    if not path.exists():
        return points
    for line in _data_lines(path):
        e = line.split()
        track = np.array(e[8:], dtype=np.int64).reshape(-1, 2)
        points[int(e[0])] = Point3D(
            int(e[0]), np.array(e[1:4], np.float64), np.array(e[4:7], np.uint8), float(e[7]), track[:, 0], track[:, 1]
        )
    return points


def _write_txt(path: Path, cameras: dict, images: dict, points: dict) -> None:
    def fmt(values) -> str:
        return " ".join(repr(float(v)) for v in values)

    lines = ["# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    lines += [f"{c.id} {c.model} {c.width} {c.height} {fmt(c.params)}" for c in cameras.values()]
    (path / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "# POINTS2D[] as (X, Y, POINT3D_ID)"]
    for im in images.values():
        lines.append(f"{im.id} {fmt(im.qvec)} {fmt(im.tvec)} {im.camera_id} {im.name}")
        lines.append(
            " ".join(f"{x!r} {y!r} {int(i)}" for (x, y), i in zip(im.xys.tolist(), im.point3d_ids, strict=True))
        )
    (path / "images.txt").write_text("\n".join(lines) + "\n")
    lines = ["# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
    for p in points.values():
        track = " ".join(f"{i} {j}" for i, j in zip(p.image_ids, p.point2d_idxs, strict=True))
        lines.append(f"{p.id} {fmt(p.xyz)} {' '.join(str(int(c)) for c in p.rgb)} {p.error!r} {track}".rstrip())
    (path / "points3D.txt").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------- dense depth maps
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
    """Write ``[H, W]`` or ``[H, W, C]`` float data in COLMAP's dense array format."""
    array = np.asarray(array, dtype="<f4")
    arr3 = array[..., None] if array.ndim == 2 else array
    height, width, channels = arr3.shape
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(f"{width}&{height}&{channels}&".encode())
        f.write(np.transpose(arr3, (1, 0, 2)).reshape(-1, order="F").tobytes())


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
    """The COLMAP PINHOLE camera of a project intrinsic (the inverse of ``camera_intrinsic``)."""
    k = intrinsic
    return Camera(camera_id, "PINHOLE", width, height, np.array([k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5]))


def image_entry(image_id: int, camera_id: int, name: str, extrinsic: np.ndarray) -> ImageEntry:
    """An image pose entry (no keypoints) from a camera-from-world ``[3, 4]`` extrinsic."""
    qvec = geo.rotation_to_quaternion(extrinsic[:, :3])
    return ImageEntry(
        image_id,
        qvec,
        np.asarray(extrinsic[:, 3], np.float64),
        camera_id,
        name,
        np.zeros((0, 2)),
        np.zeros(0, np.int64),
    )


def find_model_dir(folder: Path) -> Path:
    for candidate in (folder / "sparse" / "0", folder / "sparse", folder):
        if (candidate / "cameras.bin").exists() or (candidate / "cameras.txt").exists():
            return candidate
    raise FileNotFoundError(f"no COLMAP sparse model under {folder} (looked in sparse/0, sparse and the folder)")


def load_colmap_scene(
    folder: str | Path,
    name: str | None = None,
    depth_type: str = "geometric",
    on_error: str = "raise",
    check_files: bool = True,
) -> SceneRecord:
    """Read a COLMAP scene folder into a ``SceneRecord`` (frames sorted by image name).

    Args:
      folder: the scene folder (layout in the module docstring).
      name: the scene name (default: the folder name).
      depth_type: "geometric" or "photometric" depth maps under ``stereo/depth_maps``; used when that folder exists.
      on_error: "raise" or "skip" (log and drop the frame) for a frame whose camera is unusable or whose image or
        depth file is missing.
      check_files: check that image and depth files exist now (otherwise only when loaded).
    """
    folder = Path(folder)
    name = name or folder.name
    try:
        cameras, images, _ = read_model(find_model_dir(folder))
    except (FileNotFoundError, ValueError, struct.error, KeyError) as e:
        raise DataError(name, None, f"cannot read the COLMAP model ({e})") from None
    depth_dir = folder / "stereo" / "depth_maps"
    has_depth = depth_dir.is_dir()
    frames = []
    for im in sorted(images.values(), key=lambda im: im.name):
        try:
            if im.camera_id not in cameras:
                raise DataError(name, im.name, f"camera {im.camera_id} is not in the model's cameras")
            cam = cameras[im.camera_id]
            try:
                intrinsic = camera_intrinsic(cam)
            except ValueError as e:
                raise DataError(name, im.name, str(e)) from None
            rot = geo.quaternion_to_rotation(im.qvec)
            image_path = folder / "images" / im.name
            depth_path = depth_dir / f"{im.name}.{depth_type}.bin"
            if check_files and not image_path.exists():
                raise DataError(name, im.name, f"image file {image_path} is missing")
            if check_files and has_depth and not depth_path.exists():
                raise DataError(
                    name,
                    im.name,
                    f"depth map {depth_path} is missing ({depth_dir} has depth maps for other images of the model)",
                )
        except DataError as e:
            report(e, on_error)
            continue
        frames.append(
            FrameRecord(
                name=im.name,
                image_path=str(image_path),
                extrinsic=np.concatenate([rot, im.tvec[:, None]], axis=1),
                intrinsic=intrinsic,
                depth_path=str(depth_path) if has_depth else None,
                depth_format="colmap_bin" if has_depth else None,
                image_size=(int(cam.height), int(cam.width)),
            )
        )
    if not frames:
        raise DataError(name, None, "no usable registered image")
    return SceneRecord(name, tuple(frames))


def write_colmap_scene(
    folder: str | Path, images: np.ndarray, extrinsics, intrinsics, depths=None, names=None, binary: bool = True
) -> None:
    """Write frames as a COLMAP scene folder: ``images [S, H, W, 3]`` uint8 (PNG files), ``extrinsics [S, 3, 4]``,
    ``intrinsics [S, 3, 3]`` (one PINHOLE camera per frame), optional ``depths [S, H, W]`` as geometric depth maps."""
    from PIL import Image

    folder = Path(folder)
    names = names or [f"frame{i:04d}.png" for i in range(len(images))]
    cameras, entries = {}, {}
    for i, (img, ext, intr, name) in enumerate(zip(images, extrinsics, intrinsics, names, strict=True)):
        path = folder / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img)).save(path)
        cameras[i + 1] = pinhole_camera(i + 1, intr, img.shape[1], img.shape[0])
        entries[i + 1] = image_entry(i + 1, i + 1, name, ext)
        if depths is not None:
            write_array(folder / "stereo" / "depth_maps" / f"{name}.geometric.bin", depths[i])
    write_model(folder / "sparse" / "0", cameras, entries, {}, binary=binary)
