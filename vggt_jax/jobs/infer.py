"""``infer.py``'s job: a folder of photos -> predictions and the exports other tools read. ``InferOptions`` is the
one record of its options and their defaults: ``infer.py`` defines its flags from it (the bundle adjustment's and
the tracks' defaults come from ``reconstruct``'s own records).

Everything is written into a hidden temporary folder beside ``--out`` and renamed into place at the end, so an
error (bad image, bad checkpoint, a failing export) never leaves half of the outputs behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vggt_jax.inference import exports
from vggt_jax.inference.family import family_of, preprocess_for
from vggt_jax.inference.intrinsics import apply_known_intrinsics, read_intrinsics
from vggt_jax.inference.predictor import Predictions, Predictor
from vggt_jax.inference.preprocess import (
    ImageInputError,
    check_track_head_size,
    original_pixels,
    resolve_inputs,
)
from vggt_jax.reconstruct.bundle import BAOptions
from vggt_jax.reconstruct.pipeline import TrackOptions, reconstruct
from vggt_jax.reconstruct.trackers import make_tracker
from vggt_jax.staging import staged_directory

ALL_EXPORTS = ("npz", "ply", "glb", "colmap", "transforms", "depth", "preview", "tracks", "trajectory")
CAMERA_EXPORTS = frozenset({"ply", "glb", "colmap", "transforms", "preview", "trajectory"})


class OutputError(ValueError):
    """The output folder cannot be written; the message names it and the fix."""


class ContentMasks:
    """``[S, H, W]`` content masks (``ImageMeta.content_mask``) made only for the frames sliced (``masks[a:b]``),
    so a long sequence's export never holds them all."""

    def __init__(self, metas):
        self.metas = metas

    def __len__(self) -> int:
        return len(self.metas)

    def __getitem__(self, frames: slice) -> np.ndarray:
        return np.stack([m.content_mask() for m in self.metas[frames]])


@dataclasses.dataclass
class InferOptions:
    """What ``infer.py``'s flags set (see its ``--help``)."""

    images: str
    out: str
    checkpoint: str
    # The variant of a raw state dict (None: told from its keys); an orbax checkpoint names its own.
    config: str | None = None
    # Preprocessing. VGGT: "crop" or "pad" at ``image_resolution`` (default the checkpoint's, 518 for the official
    # weights). VGGT-Omega: "balanced" or "max_size" at ``image_resolution``
    # (default 512, 256 for the text-aligned model). None: the family's default ("crop" / "balanced").
    mode: str | None = None
    image_resolution: int | None = None
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
    # Bundle adjustment (vggt_jax.reconstruct): tracks from several query frames, then pycolmap BA.
    ba: bool = False
    tracker: str | None = None  # reconstruct.trackers: None is the model's default (head, else features)
    # Known cameras (inference.intrinsics): a COLMAP cameras.txt, a JSON file or "exif".
    intrinsics: str | None = None
    query_frames: int = TrackOptions.query_frames
    max_query_points: int = TrackOptions.max_query_points
    query_method: str = TrackOptions.method
    query_frame_rule: str = TrackOptions.frame_rule
    vis_threshold: float = BAOptions.vis_threshold
    max_reproj_error: float = BAOptions.max_reproj_error
    camera_model: str = BAOptions.camera_model
    shared_camera: bool = BAOptions.shared_camera
    # Long sequences (vggt_jax.reconstruct.windows): windows of ``window`` frames overlapping by ``overlap``
    # (default window // 2); automatic with windows of ``max_frames_per_pass`` when the sequence is longer.
    window: int | None = None
    overlap: int | None = None
    max_frames_per_pass: int | None = None
    loop_closure: bool = True
    # Frame-sharded inference (vggt_jax.inference.sharded): each forward's frames split over every local device.
    shard_frames: bool = False
    # An exported model folder (python -m vggt_jax.export) to run instead of ``checkpoint``.
    exported: str | None = None

    def window_options(self, num_frames: int):
        """The windowing of ``num_frames`` frames, or None for one forward over all of them."""
        from vggt_jax.reconstruct.windows import WindowOptions

        limit = self.max_frames_per_pass or default_max_frames_per_pass(self.shard_frames)
        window = self.window or (limit if num_frames > limit else None)
        if window is None or num_frames <= window:
            return None
        overlap = self.overlap if self.overlap is not None else window // 2
        return WindowOptions(window=window, overlap=overlap, loop_closure=self.loop_closure)

    def track_options(self):
        return TrackOptions(self.query_frames, self.max_query_points, self.query_method, self.query_frame_rule)

    def ba_options(self):
        return BAOptions(
            vis_threshold=self.vis_threshold,
            max_reproj_error=self.max_reproj_error,
            init_max_reproj_error=max(BAOptions.init_max_reproj_error, self.max_reproj_error),
            camera_model=self.camera_model,
            shared_camera=self.shared_camera,
        )


def default_max_frames_per_pass(shard_frames: bool = False) -> int:
    """Frames one forward takes before infer.py switches to windows: 128 on CPU (time), 256 per accelerator
    (about what 518-px frames of VGGT-1B need in bf16 on a 24 GB card with our memory use; an estimate, not
    measured on one: set --max_frames_per_pass for your device), times the devices when frames are sharded."""
    import jax

    if jax.default_backend() == "cpu":
        return 128
    return 256 * (jax.local_device_count() if shard_frames else 1)


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


def check_finite_cameras(pred: Predictions, consequence: str) -> None:
    """Raise ValueError naming the frames whose predicted camera is not finite (untrained weights)."""
    bad = np.nonzero(~np.isfinite(pred.intrinsic).all(axis=(1, 2)) | ~np.isfinite(pred.extrinsic).all(axis=(1, 2)))[0]
    if len(bad):
        raise ValueError(
            f"the model predicted degenerate cameras for frames {bad.tolist()} (a field of view of 0, i.e. an "
            f"infinite focal length), so {consequence}; is the checkpoint a trained VGGT? (--exports npz,depth "
            "writes what needs no camera)"
        )


def write_colmap_models(directory: Path, points, pred: Predictions) -> None:
    """The feed-forward COLMAP model of ``points`` (``exports.select_points``) and ``pred``'s cameras, binary under
    ``sparse/0`` and text under ``sparse_txt/0``, each point observed where it came from in the original images."""
    metas = pred.metas
    observed = original_pixels(metas, points.frame, points.row, points.col)
    original_hw = np.array([m.original_hw for m in metas])
    names = [m.name for m in metas]
    for fmt, sub in (("bin", "sparse/0"), ("txt", "sparse_txt/0")):
        exports.write_colmap(
            directory / sub,
            points,
            pred.extrinsic,
            pred.intrinsic_original,
            original_hw,
            names,
            observed_xy=observed,
            fmt=fmt,
        )


def write_exports(directory: Path, pred: Predictions, opts: InferOptions, recon=None) -> None:
    """Every export of ``opts.exports`` into ``directory``. With a bundle adjustment (``recon``), the camera exports
    use its cameras, ``sparse/0`` is its model (multi-view tracks) and ``ba_report.json`` says how it went."""
    feed_forward = pred
    if recon is not None:
        pred = recon.adjusted
    metas = pred.metas
    names = [m.name for m in metas]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ImageInputError(f"several input images are named {dup}; COLMAP and transforms.json need unique names")
    original_hw = np.array([m.original_hw for m in metas])
    wanted = set(opts.exports)
    if wanted & CAMERA_EXPORTS:
        check_finite_cameras(pred, f"{sorted(wanted & CAMERA_EXPORTS)} cannot be written")
    windowed = isinstance(pred.depth, np.memmap)
    if "npz" in wanted:
        arrays = feed_forward.arrays()
        if windowed:  # the dense arrays already sit in frames/*.npy (memory maps); keep the small ones here
            arrays = {k: v for k, v in arrays.items() if not isinstance(v, np.memmap)}
        if recon is not None:
            arrays.update(
                ba_extrinsic=pred.extrinsic,
                ba_intrinsic=pred.intrinsic,
                ba_intrinsic_original=pred.intrinsic_original,
                ba_radial=recon.ba.radial,
            )
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
        select = exports.select_points_per_frame if windowed else exports.select_points
        masks = ContentMasks(metas)
        points = select(
            cloud,
            conf,
            pred.images,
            conf_percentile=opts.conf_percentile,
            mask=masks if windowed else masks[:],
            max_points=opts.max_points,
            seed=opts.seed,
        )
    if wanted & {"colmap", "transforms"}:
        write_images(directory, opts, names)
    if "ply" in wanted:
        exports.write_ply(directory, points)
    if "glb" in wanted:
        exports.write_glb(directory, points, pred.extrinsic, pred.intrinsic_original, original_hw)
    if "colmap" in wanted and recon is not None:
        from vggt_jax.geometry import colmap_io

        for fmt, sub in (("bin", "sparse/0"), ("txt", "sparse_txt/0")):
            exports.commit_files(directory / sub, colmap_io.model_files(recon.ba.reconstruction, fmt))
    elif "colmap" in wanted:
        write_colmap_models(directory, points, pred)
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
    if "trajectory" in wanted:
        exports.write_trajectories(directory, pred.extrinsic)
    if recon is not None:
        report = dict(recon.report, image_names=names)
        exports.commit_files(directory, {"ba_report.json": (json.dumps(report, indent=1) + "\n").encode()})


def load_predictor(opts: InferOptions):
    """The predictor ``opts`` names: the exported model's, the frame-sharded or the jitted one of a checkpoint."""
    if opts.exported:
        if opts.shard_frames or opts.dtype:
            raise ValueError("--exported runs the program as exported; --shard_frames and --dtype are the checkpoint's")
        from vggt_jax.export.predictor import ExportedPredictor

        return ExportedPredictor(opts.exported)
    if opts.shard_frames:
        from vggt_jax.inference.sharded import FrameShardedPredictor as predictor_class
    else:
        predictor_class = Predictor
    return predictor_class.from_checkpoint(opts.checkpoint, dtype=opts.dtype, config=opts.config)


def preprocess(opts: InferOptions, predictor: Predictor, into: Path | None = None):
    """The images as the checkpoint's model family expects them: (images, metas); with ``into``, a memory map of
    that ``.npy`` file, loaded one image at a time."""
    kw = dict(fps=opts.fps, max_frames=opts.max_frames, into=into)
    return preprocess_for(predictor.config, opts.images, opts.mode, opts.image_resolution, **kw)


def run_windowed(predictor, images, metas, window_opts, directory: Path, tracking: bool, step) -> Predictions:
    """Windowed inference (``reconstruct.windows``) of a long sequence; the frames' arrays are memory-mapped from
    ``directory/frames/*.npy`` and the windows' diagnostics go to ``directory/windows.json``."""
    from vggt_jax.reconstruct.windows import run_windows

    if tracking:
        raise ValueError(
            f"{len(images)} frames run in windows of {window_opts.window}, and --track/--queries/--ba do not work "
            "across windows yet; run them on at most --max_frames_per_pass frames"
        )

    def predict(frames: np.ndarray) -> Predictions:
        return predictor(images[frames], metas=[metas[i] for i in frames])

    step(f"{len(images)} frames in windows of {window_opts.window} (overlap {window_opts.overlap})")
    result = run_windows(predict, len(images), window_opts, directory / "frames", step, images=images)
    pred = result.predictions
    pred.metas = list(metas)
    pred.intrinsic_original = np.stack(
        [m.intrinsics_to_original(k) for m, k in zip(metas, pred.intrinsic, strict=True)]
    )
    report = dict(
        windows=result.windows,
        loops=result.loops,
        pose_graph=result.pose_graph,
        options=dataclasses.asdict(window_opts),
    )
    exports.commit_files(directory, {"windows.json": (json.dumps(report, indent=1) + "\n").encode()})
    return pred


def run(opts: InferOptions, progress: Callable[[str], None] | None = None) -> tuple[Path, Predictions]:
    """Run inference and write the exports into ``opts.out``; returns (the output folder, the predictions)."""
    step = progress or (lambda message: None)
    unknown = set(opts.exports) - set(ALL_EXPORTS)
    if unknown:
        raise ValueError(f"unknown export(s) {sorted(unknown)}; choose from {', '.join(ALL_EXPORTS)}")
    out, tmp = prepare_output(opts.out, opts.overwrite)
    with staged_directory(out, tmp):
        track_opts, ba_opts = (opts.track_options(), opts.ba_options()) if opts.ba else (None, None)
        step("loading checkpoint")
        predictor = load_predictor(opts)
        cfg = predictor.config
        step("loading images")
        # Into frames/images.npy, one image at a time: a long sequence keeps it there (memory-mapped); a sequence
        # that runs in one forward reads it back into memory.
        (tmp / "frames").mkdir()
        images, metas = preprocess(opts, predictor, into=tmp / "frames" / "images.npy")
        queries = query_points(opts, metas[0], np.random.default_rng(opts.seed))
        if opts.point_source == "points" and cfg.point_head is None:
            raise ValueError(f"{cfg.name} has no point head; use --points_from depth (points from depth + cameras)")
        known = None
        if opts.intrinsics:
            known = read_intrinsics(
                opts.intrinsics, [m.name for m in metas], [m.original_hw for m in metas], [m.path for m in metas]
            )
        tracker = make_tracker(opts.tracker, cfg, track_opts or TrackOptions()).name if opts.ba else None
        if queries is not None or tracker in ("head", "both"):
            if cfg.track_head is None:
                raise ValueError(
                    f"the {family_of(cfg).name} model of this checkpoint has no track head, which --track/--queries "
                    "needs; track with a VGGT checkpoint that has one"
                )
            head = predictor.config.track_head
            check_track_head_size(
                *images.shape[-2:],
                corr_levels=head.tracker.corr_levels,
                down_ratio=head.feature_extractor.down_ratio,
            )
        window_opts = opts.window_options(len(images))
        if window_opts is not None:
            if known is not None:
                raise ValueError(
                    "--intrinsics does not work with windows yet; run at most --max_frames_per_pass frames"
                )
            pred = run_windowed(predictor, images, metas, window_opts, tmp, queries is not None or opts.ba, step)
        else:
            images = np.array(images)
            shutil.rmtree(tmp / "frames")
            step(f"compiling and running on {len(images)} frames of {images.shape[-2]}x{images.shape[-1]}")
            pred = predictor(images, queries, metas, keep_track_features=tracker in ("head", "both"))
            if known is not None:
                pred = apply_known_intrinsics(pred, known)
        recon = None
        if opts.ba:
            check_finite_cameras(pred, "they cannot be bundle-adjusted")
            step(f"tracks ({tracker}) and bundle adjustment")
            recon = reconstruct(
                predictor,
                images,
                metas,
                track_options=track_opts,
                ba_options=ba_opts,
                pred=pred,
                tracker=tracker,
                fix_intrinsics=known is not None,
            )
            pred.track_features = None
        step("writing exports")
        write_exports(tmp, pred, opts, recon)
    return out, pred
