"""COLMAP scene folders: the sparse model (cameras, images, points3D; .bin or .txt) and dense depth maps.

Expected folder layout (that of ``colmap image_undistorter`` output, or a plain SfM project)::

    scene/images/<NAME>                                   the image files, NAME as in images.bin (may hold '/')
    scene/sparse/0/{cameras,images,points3D}.{bin,txt}    or scene/sparse/...
    scene/stereo/depth_maps/<NAME>.geometric.bin          optional dense depth (COLMAP's float32 array format)

The model is read and written by pycolmap through ``vggt_jax.geometry.colmap_io``, which also converts COLMAP's
cameras and poses to this project's extrinsics and intrinsics (pixel centres move by 0.5 px). Only pinhole-equivalent
cameras are usable for training: a model with non-zero distortion is bad data (undistort with ``colmap
image_undistorter`` first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggt_jax.data.sources import DataError, FrameRecord, SceneRecord, report, require_files
from vggt_jax.geometry import colmap_io


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
    model = read_scene_model(folder, name)
    depth_dir = folder / "stereo" / "depth_maps"
    depth_path = (lambda image: depth_dir / f"{image}.{depth_type}.bin") if depth_dir.is_dir() else None
    frames = model_frames(
        model, name, lambda image: folder / "images" / image, depth_path, "colmap_bin", on_error, check_files
    )
    return SceneRecord(name, tuple(frames))


def read_scene_model(folder: Path, scene: str):
    """The COLMAP model under ``folder`` (``find_model_dir``), or a ``DataError`` naming the scene."""
    try:
        return colmap_io.read_model(find_model_dir(folder))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(scene, None, f"cannot read the COLMAP model ({e})") from None


def model_frames(
    model,
    scene: str,
    image_path,
    depth_path=None,
    depth_format: str | None = None,
    on_error: str = "raise",
    check_files: bool = True,
    depth_size_checked: bool = False,
) -> list[FrameRecord]:
    """The registered images of a COLMAP ``model`` as ``FrameRecord``s, sorted by name (the COLMAP and MegaDepth
    readers). ``image_path(name)`` / ``depth_path(name)`` give the files (``depth_path`` None: no depth);
    ``depth_size_checked``: the depth file must have the image's size. An unregistered image, a camera that is not
    pinhole-equivalent or (``check_files``) a missing file is reported per ``on_error`` and the frame dropped; a
    model without any usable image is a ``DataError``."""
    frames = []
    for im in sorted(model.images.values(), key=lambda im: im.name):
        image_file = image_path(im.name)
        depth_file = depth_path(im.name) if depth_path is not None else None
        try:
            if not im.has_pose:
                raise DataError(scene, im.name, "the image is not registered (no pose in the model)")
            cam = model.cameras[im.camera_id]
            try:
                intrinsic = colmap_io.camera_intrinsic(cam)
            except ValueError as e:
                raise DataError(scene, im.name, str(e)) from None
            if check_files:
                require_files((("image", image_file), ("depth", depth_file)), scene, im.name)
        except DataError as e:
            report(e, on_error)
            continue
        size = (int(cam.height), int(cam.width))
        frames.append(
            FrameRecord(
                name=im.name,
                image_path=str(image_file),
                extrinsic=colmap_io.image_extrinsic(im),
                intrinsic=intrinsic,
                depth_path=None if depth_file is None else str(depth_file),
                depth_format=None if depth_file is None else depth_format,
                image_size=size,
                depth_size=size if depth_size_checked else None,
            )
        )
    if not frames:
        raise DataError(scene, None, "no usable registered image")
    return frames


def write_colmap_scene(
    folder: str | Path, images: np.ndarray, extrinsics, intrinsics, depths=None, names=None, binary: bool = True
) -> None:
    """Write frames as a COLMAP scene folder: ``images [S, H, W, 3]`` uint8 (PNG files), ``extrinsics [S, 3, 4]``,
    ``intrinsics [S, 3, 3]`` (one PINHOLE camera per frame), optional ``depths [S, H, W]`` as geometric depth maps."""
    from PIL import Image

    folder = Path(folder)
    names = names or [f"frame{i:04d}.png" for i in range(len(images))]
    for i, (img, name) in enumerate(zip(images, names, strict=True)):
        path = folder / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img)).save(path)
        if depths is not None:
            colmap_io.write_array(folder / "stereo" / "depth_maps" / f"{name}.geometric.bin", depths[i])
    sizes = np.array([img.shape[:2] for img in images])
    rec = colmap_io.new_reconstruction(np.asarray(extrinsics), np.asarray(intrinsics), sizes, list(names))
    model_dir = folder / "sparse" / "0"
    model_dir.mkdir(parents=True, exist_ok=True)
    for file_name, content in colmap_io.model_files(rec, "bin" if binary else "txt").items():
        (model_dir / file_name).write_bytes(content)
