"""ScanNet scenes as the official SensReader exports them.

``python reader.py --filename scene0000_00.sens --output_path scene0000_00 --export_depth_images
--export_color_images --export_poses --export_intrinsics`` (ScanNet's ``SensReader/python``) writes::

    scene0000_00/color/<i>.jpg                      colour frame i (1296x968 RGB JPEG); i = 0, 1, ... (30 fps)
    scene0000_00/depth/<i>.png                      depth frame i: 16-bit PNG, millimetres (ScanNet's depth shift
                                                    1000), 640x480, 0 = no measurement
    scene0000_00/pose/<i>.txt                       4x4 camera-to-world, OpenCV camera axes (x right, y down, z
                                                    forward), metres; written with "%f" (6 decimals). Frames whose
                                                    tracking was lost are written as rows of -inf
    scene0000_00/intrinsic/intrinsic_color.txt      4x4, [[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    scene0000_00/intrinsic/intrinsic_depth.txt      the same for the depth camera

Conventions and how they are used:

* The intrinsics are OpenCV calibrations (pixel centres at integer coordinates, this project's convention): used as
  they are. ``extrinsic_color.txt`` / ``extrinsic_depth.txt`` (also exported) are identity in ScanNet v2, since the
  depth is registered to the colour camera: both share the pose in ``pose/``.
* Colour and depth differ in size (and slightly in aspect ratio: 1296/968 vs 640/480). By default frames are served at
  the depth's resolution, the colour image resized to it (bicubic) with ``intrinsic_depth``: what ScanNet users do
  (NICE-SLAM, BundleFusion, most depth-supervised training). ``resolution="color"`` serves the colour resolution
  instead, the depth resized up by nearest neighbour, with ``intrinsic_color``.
* A -inf pose (lost tracking) is bad data: that frame is raised or skipped (``on_error``), never served.

A root folder of several scenes (``scans/``, or a folder of ``scene*`` folders) loads them all; frames are named by
their index ("0", "10", ...), ordered by it as an integer, and ``stride`` keeps every k-th (ScanNet is 30 fps).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
from PIL import Image

from vggt_jax.data.sources import (
    DataError,
    FrameRecord,
    SceneRecord,
    extrinsic_to_pose,
    load_each,
    pose_to_extrinsic,
    read_matrix,
    report,
    require_files,
    scene_folders,
    write_matrix,
    write_png_depth,
)

COLOR_SIZE = (968, 1296)  # (H, W) of ScanNet v2's colour frames
DEPTH_SIZE = (480, 640)
DEPTH_SCALE = 0.001  # metres per depth PNG unit (millimetres)
RESOLUTIONS = ("depth", "color")
_FILES = dict(color=".jpg", depth=".png", pose=".txt")


def is_scannet_scene(folder: Path) -> bool:
    return (folder / "pose").is_dir() and (folder / "intrinsic").is_dir()


def _intrinsic(folder: Path, scene: str, which: str) -> np.ndarray:
    matrix = read_matrix(folder / "intrinsic" / f"intrinsic_{which}.txt", (4, 4), scene, None, f"{which} intrinsic")
    intrinsic = matrix[:3, :3]
    if intrinsic[0, 0] <= 0 or intrinsic[1, 1] <= 0:
        raise DataError(scene, None, f"intrinsic_{which}.txt has non-positive focal lengths: {intrinsic.tolist()}")
    return intrinsic


def _frame_indices(folder: Path) -> list[int]:
    """Every index that has a colour, depth or pose file (a frame missing one of them is then reported)."""
    indices = set()
    for sub, ext in _FILES.items():
        if (folder / sub).is_dir():
            pattern = re.compile(rf"^(\d+){re.escape(ext)}$")
            indices.update(int(m.group(1)) for p in (folder / sub).iterdir() if (m := pattern.match(p.name)))
    return sorted(indices)


def load_scannet_scene(
    folder: str | Path,
    name: str | None = None,
    stride: int = 1,
    resolution: str = "depth",
    color_size: tuple[int, int] = COLOR_SIZE,
    depth_size: tuple[int, int] = DEPTH_SIZE,
    on_error: str = "raise",
    check_files: bool = True,
) -> SceneRecord:
    """Read one exported ScanNet scene into a ``SceneRecord`` (layout and conventions in the module docstring).

    Args:
      folder: the scene folder (holding color/, depth/, pose/, intrinsic/).
      name: the scene name (default: the folder name).
      stride: keep every ``stride``-th frame index (taken before bad frames are dropped, so a bad frame does not
        shift the selection).
      resolution: "depth" (default: colour resized to the depth, intrinsic_depth) or "color" (depth resized to the
        colour, intrinsic_color).
      color_size, depth_size: the (H, W) of the exported files, checked at load time (ScanNet v2's by default; pass
        others for exports written at another size).
      on_error: "raise" or "skip" (log and drop the frame) for a frame with a missing file or an invalid pose.
      check_files: check that colour and depth files exist now (otherwise only when loaded). Poses are always read.
    """
    folder = Path(folder)
    name = name or folder.name
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    intrinsic = _intrinsic(folder, name, resolution)
    frames = []
    for index in _frame_indices(folder)[::stride]:
        frame = str(index)
        paths = {sub: folder / sub / f"{index}{ext}" for sub, ext in _FILES.items()}
        try:
            pose = read_matrix(paths["pose"], (4, 4), name, frame, "pose")
            try:
                extrinsic = pose_to_extrinsic(pose, "camera_to_world", "opencv")
            except ValueError as e:
                raise DataError(name, frame, f"pose file {paths['pose']}: {e}") from None
            if check_files:
                require_files((("color", paths["color"]), ("depth", paths["depth"])), name, frame)
        except DataError as e:
            report(e, on_error)
            continue
        frames.append(
            FrameRecord(
                name=frame,
                image_path=str(paths["color"]),
                extrinsic=extrinsic,
                intrinsic=intrinsic,
                depth_path=str(paths["depth"]),
                depth_format="png_u16",
                depth_scale=DEPTH_SCALE,
                image_size=tuple(color_size),
                depth_size=tuple(depth_size),
                resize_to=tuple(depth_size if resolution == "depth" else color_size),
            )
        )
    if not frames:
        raise DataError(name, None, "no usable frame (color/, depth/ and pose/ have no complete frame with a pose)")
    return SceneRecord(name, tuple(frames))


def load_scannet(root: str | Path, scenes=None, on_error: str = "raise", **options) -> list[SceneRecord]:
    """Every ScanNet scene under ``root``: a scene folder, a folder of them, or one holding ``scans/``.

    ``scenes``: if given, only these scene names. A scene that cannot be read (no intrinsics, no usable frame) is
    raised or, with ``on_error="skip"``, logged and dropped. ``options`` go to ``load_scannet_scene``.
    """
    root = Path(root)
    if not is_scannet_scene(root) and (root / "scans").is_dir():
        root = root / "scans"
    wanted = None if scenes is None else lambda folder: folder.name in scenes
    load = functools.partial(load_scannet_scene, on_error=on_error, **options)
    return load_each(scene_folders(root, is_scannet_scene), load, on_error, wanted)


def write_scannet_scene(
    folder: str | Path,
    colors: np.ndarray,
    depths: np.ndarray,
    extrinsics: np.ndarray,
    intrinsic_color: np.ndarray,
    intrinsic_depth: np.ndarray,
) -> None:
    """Write frames as SensReader exports them (for tests and for exporting synthetic scenes).

    ``colors [S, Hc, Wc, 3]`` uint8, ``depths [S, H, W]`` metres (stored as millimetres, 0 = invalid), ``extrinsics
    [S, 3, 4]`` camera-from-world (a non-finite one is written as ScanNet marks lost tracking: rows of -inf),
    ``intrinsic_color`` / ``intrinsic_depth [3, 3]``. Matrices are written with SensReader's "%f". Colour frames are
    stored losslessly, as PNG data under ScanNet's ``.jpg`` names (Pillow reads by content), so a round trip is exact.
    """
    folder = Path(folder)
    for sub in ("color", "depth", "pose", "intrinsic"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for which, intrinsic in (("color", intrinsic_color), ("depth", intrinsic_depth)):
        matrix = np.eye(4)
        matrix[:3, :3] = intrinsic
        write_matrix(folder / "intrinsic" / f"intrinsic_{which}.txt", matrix, fmt="%f")
        write_matrix(folder / "intrinsic" / f"extrinsic_{which}.txt", np.eye(4), fmt="%f")
    for i, (color, depth, extrinsic) in enumerate(zip(colors, depths, extrinsics, strict=True)):
        Image.fromarray(np.asarray(color)).save(folder / "color" / f"{i}.jpg", format="PNG")
        write_png_depth(folder / "depth" / f"{i}.png", depth, DEPTH_SCALE)
        finite = np.isfinite(extrinsic).all()
        pose = extrinsic_to_pose(extrinsic) if finite else np.full((4, 4), -np.inf)
        write_matrix(folder / "pose" / f"{i}.txt", pose, fmt="%f")
