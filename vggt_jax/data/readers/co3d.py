"""CO3Dv2 layout: per-category gzipped JSON annotations, images, depth maps and depth masks.

Layout (paths inside the annotations are relative to the dataset root)::

    root/<category>/frame_annotations.jgz       gzipped JSON list of FrameAnnotation dicts (all sequences)
    root/<category>/sequence_annotations.jgz    gzipped JSON list of SequenceAnnotation dicts
    root/<category>/<sequence>/images/frame000001.jpg
    root/<category>/<sequence>/depths/frame000001.jpg.geometric.png
    root/<category>/<sequence>/depth_masks/frame000001.png

A FrameAnnotation (facebookresearch/co3d ``dataset/data_types.py``) holds ``sequence_name``, ``frame_number``,
``frame_timestamp``, ``image {path, size [H, W]}``, ``depth {path, scale_adjustment, mask_path}``, ``mask {path,
mass}`` and ``viewpoint {R, T, focal_length, principal_point, intrinsics_format}``.

Conventions, and how they are converted (PyTorch3D ``PerspectiveCameras`` -> OpenCV, as pytorch3d's
``opencv_from_cameras_projection`` does, then to this project's pixel centres):

* Pose: PyTorch3D multiplies row vectors, ``X_cam = X_world @ R + T``, with camera axes +X left, +Y up, +Z forward.
  OpenCV's x right, y down is PyTorch3D's with x and y negated, so ``R_cv = diag(-1, -1, 1) @ R.T`` and
  ``t_cv = diag(-1, -1, 1) @ T``.
* Intrinsics, ``ndc_isotropic``: focal length and principal point are in NDC units where the shorter image side
  spans [-1, 1], so one NDC unit is ``s = min(H, W) / 2`` pixels and NDC +x/+y point left/up. In PyTorch3D's screen
  space (origin at the top-left image corner, pixel centres at i + 0.5): ``f_px = s * f_ndc`` and
  ``c_px = (W / 2, H / 2) - s * p_ndc``. This project puts pixel centres at integers, so the principal point is
  ``c_px - 0.5``. (The official VGGT CO3D preprocessing keeps PyTorch3D's corner convention, i.e. its principal
  points sit 0.5 px to the bottom-right of ours; the crop that re-centres the principal point absorbs the difference.)
* ``ndc_norm_image_bounds`` (legacy): each axis spans [-1, 1], so ``f`` and ``p`` are first scaled by
  ``(W, H) / min(H, W)`` per axis, then treated as isotropic.
* Depth: a 16-bit PNG whose values are float16 bit patterns; ``depth = float16 value * scale_adjustment`` (camera z).
  The depth mask PNG marks valid pixels with values > 128 (the official loader's threshold).
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from vggt_jax.data.sources import DataError, FrameRecord, SceneRecord, report, require_files

_FLIP_XY = np.diag([-1.0, -1.0, 1.0])


def co3d_to_opencv(viewpoint: dict, image_size_hw) -> tuple[np.ndarray, np.ndarray]:
    """A CO3D ``viewpoint`` dict and the image's (H, W) -> ``extrinsic [3, 4]``, ``intrinsic [3, 3]`` in this project's
    conventions (module docstring)."""
    height, width = (float(x) for x in image_size_hw)
    focal = np.asarray(viewpoint["focal_length"], np.float64)
    pp = np.asarray(viewpoint["principal_point"], np.float64)
    fmt = viewpoint.get("intrinsics_format", "ndc_norm_image_bounds")
    if fmt == "ndc_norm_image_bounds":
        per_axis = np.array([width, height]) / min(width, height)
        focal, pp = focal * per_axis, pp * per_axis
    elif fmt != "ndc_isotropic":
        raise ValueError(f"unknown intrinsics_format {fmt!r}")
    s = min(width, height) / 2
    f_px = focal * s
    c_px = np.array([width, height]) / 2 - pp * s - 0.5
    intrinsic = np.array([[f_px[0], 0.0, c_px[0]], [0.0, f_px[1], c_px[1]], [0.0, 0.0, 1.0]])
    rot = _FLIP_XY @ np.asarray(viewpoint["R"], np.float64).T
    trans = _FLIP_XY @ np.asarray(viewpoint["T"], np.float64)
    return np.concatenate([rot, trans[:, None]], axis=1), intrinsic


def opencv_to_co3d(extrinsic: np.ndarray, intrinsic: np.ndarray, image_size_hw) -> dict:
    """The inverse of ``co3d_to_opencv``: a ``viewpoint`` dict in the ``ndc_isotropic`` format."""
    height, width = (float(x) for x in image_size_hw)
    s = min(width, height) / 2
    focal = np.array([intrinsic[0, 0], intrinsic[1, 1]]) / s
    pp = (np.array([width, height]) / 2 - (intrinsic[:2, 2] + 0.5)) / s
    return dict(
        R=(_FLIP_XY @ extrinsic[:, :3]).T.tolist(),
        T=(_FLIP_XY @ extrinsic[:, 3]).tolist(),
        focal_length=focal.tolist(),
        principal_point=pp.tolist(),
        intrinsics_format="ndc_isotropic",
    )


def read_depth_png(path: str | Path, scale_adjustment: float = 1.0) -> np.ndarray:
    """A CO3D depth PNG -> ``[H, W]`` float32 depth (``float16 bits * scale_adjustment``)."""
    with Image.open(path) as img:
        bits = np.asarray(img, dtype=np.uint16)
    return bits.view(np.float16).astype(np.float32) * np.float32(scale_adjustment)


def write_depth_png(path: str | Path, depth: np.ndarray, scale_adjustment: float = 1.0) -> None:
    """Write ``depth [H, W]`` as CO3D does (``depth / scale_adjustment`` as float16 bits in a 16-bit PNG)."""
    bits = (np.asarray(depth, np.float32) / scale_adjustment).astype(np.float16).view(np.uint16)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(bits).save(path)


def _load_jgz(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def load_co3d(
    root: str | Path,
    categories=None,
    sequences=None,
    min_frames: int = 1,
    on_error: str = "raise",
    check_files: bool = True,
) -> list[SceneRecord]:
    """Read CO3Dv2 annotations under ``root`` into one ``SceneRecord`` per sequence, named ``category/sequence``.

    Args:
      categories: category folder names (default: every folder holding a frame_annotations.jgz).
      sequences: if given, only these sequence names.
      min_frames: drop sequences with fewer usable frames (the official trainer uses 24).
      on_error: "raise" or "skip" (log and drop) for frames with missing files or unusable cameras, sequences missing
        from sequence_annotations.jgz, and duplicate frame numbers.
      check_files: check that image, depth and mask files exist now (otherwise only when loaded).
    """
    root = Path(root)
    if categories is None:
        categories = sorted(p.parent.name for p in root.glob("*/frame_annotations.jgz"))
    if not categories:
        raise FileNotFoundError(f"no <category>/frame_annotations.jgz under {root}")
    scenes = []
    for category in categories:
        cat_dir = root / category
        try:
            frames = _load_jgz(cat_dir / "frame_annotations.jgz")
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(category, None, f"cannot read frame_annotations.jgz ({e})") from None
        seq_path = cat_dir / "sequence_annotations.jgz"
        known = {s["sequence_name"] for s in _load_jgz(seq_path)} if seq_path.exists() else None
        by_sequence = defaultdict(list)
        for anno in frames:
            by_sequence[anno["sequence_name"]].append(anno)
        if known is not None:
            for seq in sorted(known - set(by_sequence)):
                report(
                    DataError(f"{category}/{seq}", None, "listed in sequence_annotations.jgz but has no frames"),
                    on_error,
                )
        for seq in sorted(by_sequence):
            if sequences is not None and seq not in sequences:
                continue
            scene = f"{category}/{seq}"
            if known is not None and seq not in known:
                report(DataError(scene, None, "has frames but is missing from sequence_annotations.jgz"), on_error)
                continue
            records = _sequence_frames(root, scene, by_sequence[seq], on_error, check_files)
            if len(records) < min_frames:
                report(
                    DataError(scene, None, f"{len(records)} usable frames, fewer than min_frames={min_frames}"), "skip"
                )
                continue
            scenes.append(SceneRecord(scene, tuple(records)))
    return scenes


def _sequence_frames(root: Path, scene: str, annos: list, on_error: str, check_files: bool) -> list[FrameRecord]:
    records, seen = [], set()
    for anno in sorted(annos, key=lambda a: a["frame_number"]):
        frame = Path(anno["image"]["path"]).name
        try:
            if anno["frame_number"] in seen:
                raise DataError(scene, frame, f"duplicate frame_number {anno['frame_number']}")
            seen.add(anno["frame_number"])
            size = tuple(int(x) for x in anno["image"]["size"])
            try:
                extrinsic, intrinsic = co3d_to_opencv(anno["viewpoint"], size)
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(scene, frame, f"unusable viewpoint annotation ({e!r})") from None
            depth = anno.get("depth") or {}
            paths = dict(image=root / anno["image"]["path"])
            if depth.get("path"):
                paths["depth"] = root / depth["path"]
            if depth.get("mask_path"):
                paths["depth mask"] = root / depth["mask_path"]
            if check_files:
                require_files(paths.items(), scene, frame)
        except DataError as e:
            report(e, on_error)
            continue
        records.append(
            FrameRecord(
                name=frame,
                image_path=str(paths["image"]),
                extrinsic=extrinsic,
                intrinsic=intrinsic,
                depth_path=str(paths["depth"]) if "depth" in paths else None,
                depth_format="co3d_png" if "depth" in paths else None,
                depth_scale=float(depth.get("scale_adjustment", 1.0)),
                depth_mask_path=str(paths["depth mask"]) if "depth mask" in paths else None,
                image_size=size,
            )
        )
    return records


def write_co3d_category(root: str | Path, category: str, sequences: dict, depth_scale: float = 1.0) -> None:
    """Write sequences in the CO3Dv2 layout (for tests and for exporting synthetic scenes).

    ``sequences``: ``{name: dict(images [S, H, W, 3] uint8, extrinsics [S, 3, 4], intrinsics [S, 3, 3], depths
    [S, H, W] or None, depth_masks [S, H, W] bool or None)}``. Images are stored losslessly, as PNG data under
    CO3D's ``.jpg`` names (Pillow reads by content), so a round trip is exact.
    """
    root = Path(root)
    frame_annos, seq_annos = [], []
    for seq, data in sequences.items():
        seq_annos.append(
            dict(sequence_name=seq, category=category, video=None, point_cloud=None, viewpoint_quality_score=1.0)
        )
        for i, image in enumerate(data["images"]):
            stem = f"frame{i + 1:06d}"
            rel = Path(category) / seq
            image_rel = rel / "images" / f"{stem}.jpg"
            (root / image_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(image)).save(root / image_rel, format="PNG")
            anno = dict(
                sequence_name=seq,
                frame_number=i,
                frame_timestamp=i / 30.0,
                image=dict(path=str(image_rel), size=list(image.shape[:2])),
                viewpoint=opencv_to_co3d(data["extrinsics"][i], data["intrinsics"][i], image.shape[:2]),
                meta={},
            )
            if data.get("depths") is not None:
                depth_rel = rel / "depths" / f"{stem}.jpg.geometric.png"
                write_depth_png(root / depth_rel, data["depths"][i], depth_scale)
                anno["depth"] = dict(path=str(depth_rel), scale_adjustment=depth_scale, mask_path=None)
                masks = data.get("depth_masks")
                if masks is not None:
                    mask_rel = rel / "depth_masks" / f"{stem}.png"
                    (root / mask_rel).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.where(masks[i], 255, 0).astype(np.uint8)).save(root / mask_rel)
                    anno["depth"]["mask_path"] = str(mask_rel)
            frame_annos.append(anno)
    (root / category).mkdir(parents=True, exist_ok=True)
    for name, annos in (("frame_annotations.jgz", frame_annos), ("sequence_annotations.jgz", seq_annos)):
        with gzip.open(root / category / name, "wt", encoding="utf-8") as f:
            json.dump(annos, f)
