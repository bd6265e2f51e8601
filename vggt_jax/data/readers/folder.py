"""A generic folder layout for users' own captures (phones, ARKit, Blender renders, other SLAM systems).

Layout (``<name>`` is an image's file stem; frames are ordered by it, numbers compared as numbers)::

    <scene>/images/<name>.png|.jpg|.jpeg    the frames
    <scene>/depths/<name>.npy               optional: float32 [H, W] metres (camera z), 0 = invalid
    <scene>/depths/<name>.png               or a 16-bit PNG: depth = value * depth_scale metres, 0 = invalid
    <scene>/poses/<name>.txt                4x4 pose, whitespace-separated text
    <scene>/intrinsics/<name>.txt           3x3 [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels of that image
    <scene>/intrinsics.txt                  or one 3x3 for every frame without its own file
    <scene>/scene.json                      optional conventions (below)

Without a ``depths/`` folder the scene has no depth (``has_depth`` False); with one, every frame needs a depth file
(.npy is used when both exist). ``scene.json`` holds any of (defaults shown)::

    {"pose": "camera_to_world",   # or "world_to_camera": what the 4x4 in poses/ maps
     "axes": "opencv",            # the camera axes: "opencv" (x right, y down, z forward; COLMAP, ScanNet) or
                                  # "opengl" (x right, y up, z backward; ARKit, Blender, NeRF's transforms.json)
     "depth_scale": 0.001,        # metres per unit of a depth PNG (0.001: millimetres)
     "pixel_centers": "integer"}  # where the intrinsics put pixel centres: "integer" (OpenCV, this project) or
                                  # "half" (COLMAP, nerfstudio: i + 0.5; the principal point then moves by -0.5 px)

Poses and intrinsics are read when the scene is indexed and images and depth maps are found by listing their
folders, so every file a frame names is checked then (there is no ``check_files``); the files are decoded when loaded.
A root folder holding several such scenes loads them all.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from vggt_jax.data.sources import (
    CAMERA_AXES,
    POSE_KINDS,
    DataError,
    FrameRecord,
    SceneRecord,
    extrinsic_to_pose,
    load_each,
    pose_to_extrinsic,
    read_matrix,
    report,
    scene_folders,
    write_matrix,
    write_png_depth,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
DEPTH_FORMATS = {".npy": "npy", ".png": "png_u16"}  # in order of preference
PIXEL_CENTERS = ("integer", "half")
DEFAULTS = dict(pose="camera_to_world", axes="opencv", depth_scale=0.001, pixel_centers="integer")
_CHOICES = dict(pose=POSE_KINDS, axes=CAMERA_AXES, pixel_centers=PIXEL_CENTERS)


def is_folder_scene(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "poses").is_dir()


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_settings(folder: Path, scene: str) -> dict:
    """``scene.json`` merged over ``DEFAULTS``; an unknown key or value raises ``DataError`` naming the valid ones."""
    path = folder / "scene.json"
    if not path.exists():
        return dict(DEFAULTS)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(scene, None, f"cannot read {path} ({e})") from None
    if not isinstance(stored, dict):
        raise DataError(scene, None, f"{path} must hold a JSON object with keys among {sorted(DEFAULTS)}")
    unknown = sorted(set(stored) - set(DEFAULTS))
    if unknown:
        raise DataError(scene, None, f"{path}: unknown keys {unknown}; the keys are {sorted(DEFAULTS)}")
    settings = dict(DEFAULTS, **stored)
    for key, choices in _CHOICES.items():
        if settings[key] not in choices:
            raise DataError(scene, None, f"{path}: {key} must be one of {choices}, got {settings[key]!r}")
    if not isinstance(settings["depth_scale"], int | float) or settings["depth_scale"] <= 0:
        raise DataError(scene, None, f"{path}: depth_scale must be a positive number, got {settings['depth_scale']!r}")
    return settings


def _by_stem(folder: Path, extensions) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix.lower() in extensions and path.is_file():
                found.setdefault(path.stem, []).append(path)
    return found


def _intrinsic(folder: Path, stem: str, scene: str, frame: str, pixel_centers: str) -> np.ndarray:
    own = folder / "intrinsics" / f"{stem}.txt"
    path = own if own.exists() else folder / "intrinsics.txt"
    if not path.exists():
        raise DataError(scene, frame, f"no intrinsics: neither {own} nor {path} exists")
    k = read_matrix(path, (3, 3), scene, frame, "intrinsics")
    if k[0, 0] <= 0 or k[1, 1] <= 0 or (k[2] != [0.0, 0.0, 1.0]).any() or k[0, 1] != 0 or k[1, 0] != 0:
        msg = f"intrinsics file {path} is not [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0: {k.tolist()}"
        raise DataError(scene, frame, msg)
    if pixel_centers == "half":
        k = k - np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    return k


def load_folder_scene(folder: str | Path, name: str | None = None, on_error: str = "raise") -> SceneRecord:
    """Read one scene folder (layout in the module docstring) into a ``SceneRecord``.

    Args:
      folder: the scene folder.
      name: the scene name (default: the folder name).
      on_error: "raise" or "skip" (log and drop the frame) for a frame whose pose or intrinsics file is missing,
        malformed or not a rigid pose, or whose depth file is missing.
    """
    folder = Path(folder)
    name = name or folder.name
    settings = read_settings(folder, name)
    images = _by_stem(folder / "images", IMAGE_EXTENSIONS)
    has_depth = (folder / "depths").is_dir()
    depths = _by_stem(folder / "depths", tuple(DEPTH_FORMATS))
    frames = []
    for stem in sorted(images, key=_natural_key):
        frame = images[stem][0].name
        try:
            if len(images[stem]) > 1:
                raise DataError(name, frame, f"several images named {stem}: {sorted(p.name for p in images[stem])}")
            pose_path = folder / "poses" / f"{stem}.txt"
            pose = read_matrix(pose_path, (4, 4), name, frame, "pose")
            try:
                extrinsic = pose_to_extrinsic(pose, settings["pose"], settings["axes"])
            except ValueError as e:
                raise DataError(name, frame, f"pose file {pose_path}: {e}") from None
            intrinsic = _intrinsic(folder, stem, name, frame, settings["pixel_centers"])
            depth_path = None
            if has_depth:
                if stem not in depths:
                    raise DataError(name, frame, f"depth file {folder / 'depths' / stem}.npy or .png is missing")
                depth_path = min(depths[stem], key=lambda p: list(DEPTH_FORMATS).index(p.suffix.lower()))
        except DataError as e:
            report(e, on_error)
            continue
        frames.append(
            FrameRecord(
                name=frame,
                image_path=str(images[stem][0]),
                extrinsic=extrinsic,
                intrinsic=intrinsic,
                depth_path=None if depth_path is None else str(depth_path),
                depth_format=None if depth_path is None else DEPTH_FORMATS[depth_path.suffix.lower()],
                depth_scale=float(settings["depth_scale"]) if depth_path is not None else 1.0,
            )
        )
    if not frames:
        raise DataError(name, None, f"no usable frame in {folder / 'images'}")
    return SceneRecord(name, tuple(frames))


def load_folders(root: str | Path, scenes=None, on_error: str = "raise") -> list[SceneRecord]:
    """Every scene under ``root`` (a scene folder, or a folder of them). ``scenes``: if given, only these folder
    names. A scene that cannot be read is raised or, with ``on_error="skip"``, logged and dropped."""
    wanted = None if scenes is None else lambda folder: folder.name in scenes
    load = functools.partial(load_folder_scene, on_error=on_error)
    return load_each(scene_folders(root, is_folder_scene), load, on_error, wanted)


def write_folder_scene(
    folder: str | Path,
    images: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    depths: np.ndarray | None = None,
    names=None,
    depth_format: str = "npy",
    shared_intrinsics: bool = False,
    **settings,
) -> None:
    """Write frames in this layout (for tests, and to turn other data into it).

    ``images [S, H, W, 3]`` uint8 (PNG files), ``extrinsics [S, 3, 4]`` camera-from-world OpenCV, ``intrinsics
    [S, 3, 3]`` (this project's pixel centres), ``depths [S, H, W]`` metres or None, ``depth_format`` "npy" or "png".
    ``settings``: scene.json's keys (module docstring); poses, intrinsics and depth PNGs are written in those
    conventions, and scene.json only when a setting differs from the default. ``shared_intrinsics``: one
    intrinsics.txt (frame 0's) instead of intrinsics/<name>.txt.
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; the keys are {sorted(DEFAULTS)}")
    conf = dict(DEFAULTS, **settings)
    folder = Path(folder)
    names = list(names or [f"{i:04d}" for i in range(len(images))])
    half = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]]) if conf["pixel_centers"] == "half" else 0.0
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(names):
        Image.fromarray(np.asarray(images[i])).save(folder / "images" / f"{stem}.png")
        write_matrix(folder / "poses" / f"{stem}.txt", extrinsic_to_pose(extrinsics[i], conf["pose"], conf["axes"]))
        if not shared_intrinsics:
            write_matrix(folder / "intrinsics" / f"{stem}.txt", np.asarray(intrinsics[i]) + half)
        if depths is not None and depth_format == "npy":
            (folder / "depths").mkdir(exist_ok=True)
            np.save(folder / "depths" / f"{stem}.npy", np.asarray(depths[i], np.float32))
        elif depths is not None:
            write_png_depth(folder / "depths" / f"{stem}.png", depths[i], conf["depth_scale"])
    if shared_intrinsics:
        write_matrix(folder / "intrinsics.txt", np.asarray(intrinsics[0]) + half)
    if conf != DEFAULTS:
        (folder / "scene.json").write_text(json.dumps(conf, indent=1))
