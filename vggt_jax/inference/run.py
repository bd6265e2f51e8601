"""``infer.py``'s job: a folder of photos -> predictions and the exports other tools read.

Everything is written into a hidden temporary folder beside ``--out`` and renamed into place at the end, so an
error (bad image, bad checkpoint, a failing export) never leaves half of the outputs behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vggt_jax.inference import exports
from vggt_jax.inference.predictor import Predictions, Predictor
from vggt_jax.inference.preprocess import (
    ImageInputError,
    check_track_head_size,
    load_and_preprocess_images,
    original_pixel_coords,
    resolve_inputs,
)

ALL_EXPORTS = ("npz", "ply", "glb", "colmap", "transforms", "depth", "preview", "tracks")
CAMERA_EXPORTS = frozenset({"ply", "glb", "colmap", "transforms", "preview"})


class OutputError(ValueError):
    """The output folder cannot be written; the message names it and the fix."""


@dataclasses.dataclass
class InferOptions:
    """What ``infer.py``'s flags set (see its ``--help``)."""

    images: str
    out: str
    checkpoint: str
    config: str = "vggt_1b"
    mode: str = "crop"
    dtype: str | None = None
    conf_percentile: float = 50.0
    point_source: str = "depth"
    track: int = 0
    track_layout: str = "grid"
    queries: str | None = None
    exports: Sequence[str] = ALL_EXPORTS
    fps: float = 1.0
    max_frames: int | None = None
    max_points: int | None = 2_000_000
    overwrite: bool = False
    seed: int = 0


def prepare_output(out: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    """(final folder, temporary folder beside it); fails before any heavy work if the output cannot be written."""
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is a file; choose a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"--out {out} exists and is not empty; choose another folder or pass --overwrite")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise OutputError(f"cannot write to {out.parent} ({e.strerror}); choose a writable --out") from e
    return out, tmp


def query_points(opts: InferOptions, meta, rng: np.random.Generator) -> np.ndarray | None:
    """[N, 2] pixel (x, y) in frame 0 of the model input: a grid or random points over frame 0's content, or a
    file (``.npy`` or text, N x 2) of points in frame 0's ORIGINAL pixels."""
    if opts.queries:
        path = Path(opts.queries)
        try:
            pts = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
        except (OSError, ValueError) as e:
            raise ImageInputError(f"cannot read query points from {path}: {e}; expected N x 2 pixel (x, y)") from e
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise ImageInputError(f"query points in {path} must be finite N x 2 pixel (x, y), got shape {pts.shape}")
        return meta.points_to_processed(pts)
    if opts.track <= 0:
        return None
    x0, y0, x1, y1 = meta.content_box
    margin = 4
    if opts.track_layout == "random":
        return np.stack(
            [
                rng.uniform(x0 + margin, x1 - 1 - margin, opts.track),
                rng.uniform(y0 + margin, y1 - 1 - margin, opts.track),
            ],
            axis=-1,
        )
    side = int(np.ceil(np.sqrt(opts.track)))
    xs = np.linspace(x0 + margin, x1 - 1 - margin, side)
    ys = np.linspace(y0 + margin, y1 - 1 - margin, side)
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)[: opts.track]


def write_images(directory: Path, opts: InferOptions, names: Sequence[str]) -> None:
    """The images COLMAP and transforms.json refer to, under ``images/`` (originals copied; video frames as PNG)."""
    target = directory / "images"
    target.mkdir()
    for item, name in zip(resolve_inputs(opts.images, fps=opts.fps, max_frames=opts.max_frames), names, strict=True):
        if item.path is not None:
            shutil.copy2(item.path, target / name)
        else:
            item.load().convert("RGB").save(target / name)


def write_exports(directory: Path, pred: Predictions, opts: InferOptions) -> None:
    metas = pred.metas
    names = [m.name for m in metas]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ImageInputError(f"several input images are named {dup}; COLMAP and transforms.json need unique names")
    original_hw = np.array([m.original_hw for m in metas])
    wanted = set(opts.exports)
    bad = np.nonzero(~np.isfinite(pred.intrinsic).all(axis=(1, 2)) | ~np.isfinite(pred.extrinsic).all(axis=(1, 2)))[0]
    if len(bad) and wanted & CAMERA_EXPORTS:
        raise ValueError(
            f"the model predicted degenerate cameras for frames {bad.tolist()} (a field of view of 0, i.e. an "
            f"infinite focal length), so {sorted(wanted & CAMERA_EXPORTS)} cannot be written; is the checkpoint a "
            "trained VGGT? (--exports npz,depth writes what needs no camera)"
        )
    if "npz" in wanted:
        arrays = pred.arrays()
        arrays.update(
            image_names=np.array(names),
            original_hw=original_hw,
            scale_xy=np.array([m.scale_xy for m in metas]),
            offset_xy=np.array([m.offset_xy for m in metas]),
        )
        if pred.track is not None:
            arrays["query_points"] = pred.track[0]
        exports.write_predictions(directory, arrays)
    if wanted & {"ply", "glb", "colmap", "transforms", "preview"}:
        cloud = pred.world_points_from_depth if opts.point_source == "depth" else pred.world_points
        conf = pred.depth_conf if opts.point_source == "depth" else pred.world_points_conf
        points = exports.select_points(
            cloud,
            conf,
            pred.images,
            conf_percentile=opts.conf_percentile,
            mask=np.stack([m.content_mask() for m in metas]),
            max_points=opts.max_points,
            seed=opts.seed,
        )
    if wanted & {"colmap", "transforms"}:
        write_images(directory, opts, names)
    if "ply" in wanted:
        exports.write_ply(directory, points)
    if "glb" in wanted:
        exports.write_glb(directory, points, pred.extrinsic, pred.intrinsic_original, original_hw)
    if "colmap" in wanted:
        pixels = original_pixel_coords(metas)
        for fmt, sub in (("bin", "sparse/0"), ("txt", "sparse_txt/0")):
            exports.write_colmap(
                directory / sub,
                points,
                pred.extrinsic,
                pred.intrinsic_original,
                original_hw,
                names,
                pixels_xy=pixels,
                fmt=fmt,
            )
    if "transforms" in wanted:
        exports.write_transforms_json(
            directory,
            pred.extrinsic,
            pred.intrinsic_original,
            original_hw,
            [f"images/{n}" for n in names],
            ply_file_path="points.ply" if "ply" in wanted else None,
        )
    if "depth" in wanted:
        exports.write_depth_maps(directory, pred.depth, names, conf=pred.depth_conf)
    if "preview" in wanted:
        exports.write_preview(directory, points, pred.extrinsic, pred.intrinsic_original, original_hw)
    if "tracks" in wanted and pred.track is not None:
        exports.write_tracks(directory, pred.track, names, vis=pred.vis, conf=pred.conf, frames=pred.images)


def run(opts: InferOptions, progress: Callable[[str], None] | None = None) -> tuple[Path, Predictions]:
    """Run inference and write the exports into ``opts.out``; returns (the output folder, the predictions)."""
    step = progress or (lambda message: None)
    unknown = set(opts.exports) - set(ALL_EXPORTS)
    if unknown:
        raise ValueError(f"unknown export(s) {sorted(unknown)}; choose from {', '.join(ALL_EXPORTS)}")
    out, tmp = prepare_output(opts.out, opts.overwrite)
    try:
        step("loading images")
        images, metas = load_and_preprocess_images(opts.images, opts.mode, fps=opts.fps, max_frames=opts.max_frames)
        queries = query_points(opts, metas[0], np.random.default_rng(opts.seed))
        step("loading checkpoint")
        predictor = Predictor.from_checkpoint(opts.checkpoint, dtype=opts.dtype, config=opts.config)
        if queries is not None:
            if predictor.config.track_head is None:
                raise ValueError("this checkpoint's model has no track head; drop --track/--queries")
            tracker = predictor.config.track_head
            check_track_head_size(
                *images.shape[-2:],
                corr_levels=tracker.tracker.corr_levels,
                down_ratio=tracker.feature_extractor.down_ratio,
            )
        step(f"compiling and running on {len(images)} frames of {images.shape[-2]}x{images.shape[-1]}")
        pred = predictor(images, queries, metas)
        step("writing exports")
        write_exports(tmp, pred, opts)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, pred
