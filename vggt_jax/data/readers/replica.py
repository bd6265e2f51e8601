"""Replica renders in the layout NICE-SLAM and iMAP distribute (also how Habitat-rendered sequences are exported).

Layout::

    <scene>/results/frame%06d.jpg      RGB frame i (frame000000.jpg, ...); 1200x680 in NICE-SLAM's Replica
    <scene>/results/depth%06d.png      16-bit PNG; depth = value / png_depth_scale metres (camera z; 6553.5 by
                                       default, so 65535 = 10 m), 0 = invalid (no surface)
    <scene>/traj.txt                   line i: 16 numbers, row-major 4x4 camera-to-world of frame i, OpenCV camera axes
                                       (x right, y down, z forward), metres; NICE-SLAM flips y and z to get OpenGL
    <scene>/cam_params.json            optional (else ../cam_params.json, where NICE-SLAM's download has it):
                                       {"camera": {"w", "h", "fx", "fy", "cx", "cy", "scale"}}, "scale" being
                                       png_depth_scale

The intrinsics are not stored per frame. Each of ``fx fy cx cy width height png_depth_scale`` comes from the
argument if given, else ``cam_params.json``, else NICE-SLAM's Replica defaults (``configs/Replica/replica.yaml``:
1200x680, fx = fy = 600, cx = 599.5, cy = 339.5, 6553.5). Those defaults put the principal point at ``(W - 1) / 2``,
``(H - 1) / 2``: the image centre when pixel centres sit at integer coordinates, as the renderer's symmetric frustum
requires. That is this project's convention, so they are used unchanged (COLMAP's convention would give 600, 340).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from PIL import Image

from vggt_jax.data.sources import (
    DataError,
    FrameRecord,
    SceneRecord,
    extrinsic_to_pose,
    load_each,
    parse_matrix,
    pose_to_extrinsic,
    report,
    require_files,
    scene_folders,
    write_png_depth,
)

# NICE-SLAM configs/Replica/replica.yaml, in cam_params.json's key names.
DEFAULT_CAMERA = dict(w=1200, h=680, fx=600.0, fy=600.0, cx=599.5, cy=339.5, scale=6553.5)


def is_replica_scene(folder: Path) -> bool:
    return (folder / "traj.txt").is_file() and (folder / "results").is_dir()


def _camera(folder: Path, scene: str, overrides: dict) -> dict:
    camera = dict(DEFAULT_CAMERA)
    for path in (folder / "cam_params.json", folder.parent / "cam_params.json"):
        if path.exists():
            try:
                stored = json.loads(path.read_text())["camera"]
                camera.update({k: float(stored[k]) for k in DEFAULT_CAMERA if k in stored})
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise DataError(scene, None, f"cannot read {path} ({e!r})") from None
            break
    camera.update({k: float(v) for k, v in overrides.items() if v is not None})
    if min(camera.values()) <= 0:
        raise DataError(scene, None, f"camera parameters must be positive, got {camera}")
    return camera


def load_replica_scene(
    folder: str | Path,
    name: str | None = None,
    stride: int = 1,
    fx: float | None = None,
    fy: float | None = None,
    cx: float | None = None,
    cy: float | None = None,
    width: int | None = None,
    height: int | None = None,
    png_depth_scale: float | None = None,
    on_error: str = "raise",
    check_files: bool = True,
) -> SceneRecord:
    """Read one Replica sequence into a ``SceneRecord`` (one frame per line of traj.txt, in order).

    Args:
      folder: the scene folder (holding results/ and traj.txt).
      name: the scene name (default: the folder name).
      stride: keep every ``stride``-th frame (taken before bad frames are dropped).
      fx, fy, cx, cy, width, height, png_depth_scale: the camera (pixel centres at integers) and depth scale; None
        takes cam_params.json's value, else NICE-SLAM's default (module docstring).
      on_error: "raise" or "skip" (log and drop the frame) for a malformed traj.txt line or a missing file.
      check_files: check that image and depth files exist now (otherwise only when loaded).
    """
    folder = Path(folder)
    name = name or folder.name
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    overrides = dict(fx=fx, fy=fy, cx=cx, cy=cy, w=width, h=height, scale=png_depth_scale)
    cam = _camera(folder, name, overrides)
    intrinsic = np.array([[cam["fx"], 0.0, cam["cx"]], [0.0, cam["fy"], cam["cy"]], [0.0, 0.0, 1.0]])
    size = (int(cam["h"]), int(cam["w"]))
    try:
        lines = (folder / "traj.txt").read_text().splitlines()
    except OSError as e:
        raise DataError(name, None, f"cannot read traj.txt ({e})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    frames = []
    for index in range(0, len(lines), stride):
        image_path = folder / "results" / f"frame{index:06d}.jpg"
        depth_path = folder / "results" / f"depth{index:06d}.png"
        try:
            try:
                pose = parse_matrix(lines[index], (4, 4))
                if not np.isfinite(pose).all():
                    raise ValueError("non-finite values")
                extrinsic = pose_to_extrinsic(pose, "camera_to_world", "opencv")
            except ValueError as e:
                raise DataError(
                    name, image_path.name, f"traj.txt line {index + 1} is not a rigid 4x4 pose ({e})"
                ) from None
            if check_files:
                require_files((("image", image_path), ("depth", depth_path)), name, image_path.name)
        except DataError as e:
            report(e, on_error)
            continue
        frames.append(
            FrameRecord(
                name=image_path.name,
                image_path=str(image_path),
                extrinsic=extrinsic,
                intrinsic=intrinsic,
                depth_path=str(depth_path),
                depth_format="png_u16",
                depth_scale=1.0 / cam["scale"],
                image_size=size,
                depth_size=size,
            )
        )
    if not frames:
        raise DataError(name, None, "no usable frame (traj.txt is empty or every frame is bad)")
    return SceneRecord(name, tuple(frames))


def load_replica(root: str | Path, scenes=None, on_error: str = "raise", **options) -> list[SceneRecord]:
    """Every Replica sequence under ``root`` (a scene folder or a folder of them, e.g. NICE-SLAM's ``Replica/``).

    ``scenes``: if given, only these folder names. A scene that cannot be read is raised or, with
    ``on_error="skip"``, logged and dropped. ``options`` go to ``load_replica_scene``.
    """
    wanted = None if scenes is None else lambda folder: folder.name in scenes
    load = functools.partial(load_replica_scene, on_error=on_error, **options)
    return load_each(scene_folders(root, is_replica_scene), load, on_error, wanted)


def write_replica_scene(
    folder: str | Path,
    images: np.ndarray,
    depths: np.ndarray,
    extrinsics: np.ndarray,
    intrinsic: np.ndarray | None = None,
    png_depth_scale: float = DEFAULT_CAMERA["scale"],
) -> None:
    """Write frames in the NICE-SLAM Replica layout (for tests and for exporting synthetic scenes).

    ``images [S, H, W, 3]`` uint8 (stored losslessly, as PNG data under the layout's ``.jpg`` names), ``depths [S, H,
    W]`` metres (0 = invalid; at most 65535 / png_depth_scale), ``extrinsics [S, 3, 4]`` camera-from-world. With
    ``intrinsic [3, 3]`` a cam_params.json (camera and png_depth_scale) is written in the folder; without, the frames
    must be for NICE-SLAM's default camera and depth scale.
    """
    if intrinsic is None and png_depth_scale != DEFAULT_CAMERA["scale"]:
        raise ValueError("a png_depth_scale other than the default is stored in cam_params.json: pass the intrinsic")
    folder = Path(folder)
    (folder / "results").mkdir(parents=True, exist_ok=True)
    for i, (image, depth) in enumerate(zip(images, depths, strict=True)):
        Image.fromarray(np.asarray(image)).save(folder / "results" / f"frame{i:06d}.jpg", format="PNG")
        write_png_depth(folder / "results" / f"depth{i:06d}.png", depth, 1.0 / png_depth_scale)
    # np.savetxt's default "%.18e", one pose per line, as in NICE-SLAM's traj.txt.
    rows = [" ".join(f"{x:.18e}" for x in extrinsic_to_pose(ext).reshape(-1)) for ext in extrinsics]
    (folder / "traj.txt").write_text("\n".join(rows) + "\n")
    if intrinsic is not None:
        height, width = np.asarray(images).shape[1:3]
        (fx, _, cx), (_, fy, cy) = np.asarray(intrinsic, np.float64)[:2].tolist()
        camera = dict(w=int(width), h=int(height), fx=fx, fy=fy, cx=cx, cy=cy, scale=float(png_depth_scale))
        (folder / "cam_params.json").write_text(json.dumps(dict(camera=camera)))
