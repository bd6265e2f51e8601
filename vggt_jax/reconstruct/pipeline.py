"""The stage between the model and the exports: tracks from several query frames, then bundle adjustment.

    predictor = Predictor.from_checkpoint("facebook/VGGT-1B")
    images, metas = load_and_preprocess_images("photos/")
    recon = reconstruct(predictor, images, metas)          # feed-forward + tracks + BA
    recon.ba.reconstruction.write("sparse/0"); recon.adjusted   # pycolmap model; Predictions with the BA cameras

Tracks start in frame 0 and ``query_frames - 1`` more frames (``select_query_frames``), at corner-like, confident
pixels (``select_query_points``). The official track head was trained with its queries in frame 0, so a query
frame ``q`` is tracked in one of two ways (``method``):

* ``"reorder"``: the aggregator and the track head's feature extractor run once, in the original order; the tracker
  alone runs on those features with the frames reordered so ``q`` is first (``Predictor.track``).
* ``"rerun"``: the whole model runs again on the frames reordered so ``q`` is first, as the model was trained
  (aggregator and track head both see ``q`` as the reference frame). One more forward per query frame.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from vggt_jax.inference.predictor import Predictions, Predictor
from vggt_jax.inference.preprocess import ImageMeta
from vggt_jax.reconstruct.bundle import DEFAULT_OPTIONS, BAOptions, BAResult, Tracks, bundle_adjust
from vggt_jax.reconstruct.queries import FRAME_RULES, select_query_frames, select_query_points

QUERY_METHODS = ("reorder", "rerun")


@dataclasses.dataclass(frozen=True)
class TrackOptions:
    query_frames: int = 4
    max_query_points: int = 1024  # per query frame
    method: str = "reorder"
    frame_rule: str = "pose"
    chunk: int = 256  # queries per track-head call: one compiled program for any number of queries

    def __post_init__(self):
        if self.method not in QUERY_METHODS:
            raise ValueError(f"query method must be one of {QUERY_METHODS}, got {self.method!r}")
        if self.frame_rule not in FRAME_RULES:
            raise ValueError(f"query frame rule must be one of {FRAME_RULES}, got {self.frame_rule!r}")
        if self.query_frames < 1 or self.max_query_points < 1:
            raise ValueError("query_frames and max_query_points must be >= 1")


DEFAULT_TRACK_OPTIONS = TrackOptions()


@dataclasses.dataclass
class Reconstruction:
    """``pred``: the feed-forward predictions; ``tracks``: every tracked point (original pixels); ``query_frames``;
    ``ba``: the bundle adjustment (None if not run); ``adjusted``: ``pred`` with the BA cameras (and the depth
    unprojected with them); ``report``: seconds per stage and the BA report."""

    pred: Predictions
    tracks: Tracks
    query_frames: list[int]
    ba: BAResult | None
    adjusted: Predictions | None
    report: dict


def _to_original(xy: np.ndarray, metas: list[ImageMeta] | None) -> np.ndarray:
    if metas is None:
        return np.asarray(xy, np.float64)
    return np.stack([m.points_to_original(t) for m, t in zip(metas, xy, strict=True)])


def track_query_frames(
    predictor: Predictor,
    images: np.ndarray,
    pred: Predictions,
    opts: TrackOptions = DEFAULT_TRACK_OPTIONS,
) -> tuple[Tracks, list[int], dict]:
    """Tracks of corner-like pixels of the chosen query frames through every frame (module docstring). ``pred``
    must come from ``predictor(images, metas=..., keep_track_features=True)``. Returns (tracks in original pixels,
    the query frames, seconds per stage)."""
    if predictor.config.track_head is None:
        raise ValueError("this checkpoint's model has no track head, which the reconstruction's tracks need")
    if pred.track_features is None:
        raise ValueError("pred has no track features: run the predictor with keep_track_features=True")
    sample = pred.world_points_from_depth[:, ::8, ::8].reshape(-1, 3)
    frames = select_query_frames(
        pred.extrinsic, opts.query_frames, opts.frame_rule, sample[np.isfinite(sample).all(-1)]
    )
    masks = [m.content_mask() for m in pred.metas] if pred.metas else [None] * len(images)
    parts, seconds = [], {"track": 0.0, "forward": 0.0}
    for q in frames:
        queries = select_query_points(images[q], opts.max_query_points, conf=pred.depth_conf[q], mask=masks[q])
        if len(queries) == 0:
            continue
        tic = time.perf_counter()
        if opts.method == "reorder" or q == 0:
            # Frame 0 is the trained case either way: the features of the forward pass in their own order.
            track, vis, _ = predictor.track(pred.track_features, q, queries, chunk=opts.chunk)
            seconds["track"] += time.perf_counter() - tic
        else:
            order = np.array([q] + [i for i in range(len(images)) if i != q])
            rerun = predictor(images[order], queries)
            inverse = np.argsort(order)
            track, vis = rerun.track[inverse], rerun.vis[inverse]
            seconds["forward"] += time.perf_counter() - tic
        track = np.array(track, np.float64)
        track[q] = queries  # the query pixel is where the point was defined
        col, row = queries[:, 0].astype(int), queries[:, 1].astype(int)
        rgb = np.round(np.clip(images[q][:, row, col].T, 0, 1) * 255).astype(np.uint8)
        parts.append(
            Tracks(
                _to_original(track, pred.metas),
                np.asarray(vis, np.float64),
                np.full(len(queries), q),
                pred.world_points_from_depth[q, row, col].astype(np.float64),
                rgb,
            )
        )
    if not parts:
        s = len(images)
        parts = [
            Tracks(
                np.zeros((s, 0, 2)), np.zeros((s, 0)), np.zeros(0, int), np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
            )
        ]
    return Tracks.concatenate(parts), frames, {k: round(v, 3) for k, v in seconds.items()}


def adjusted_predictions(pred: Predictions, ba: BAResult) -> Predictions:
    """``pred`` with the bundle-adjusted cameras: ``extrinsic``, ``intrinsic_original``, ``intrinsic`` (model input)
    and ``world_points_from_depth`` (the predicted depth unprojected with them). The radial term of a SIMPLE_RADIAL
    camera is not in these pinhole arrays (it is in ``ba.reconstruction`` and ``ba.radial``)."""
    from vggt_jax.geometry import depth_to_world_points

    if pred.metas is None:
        intrinsic = ba.intrinsics
    else:
        intrinsic = np.stack([m.intrinsics_to_processed(k) for m, k in zip(pred.metas, ba.intrinsics, strict=True)])
    points = depth_to_world_points(pred.depth.astype(np.float64), ba.extrinsics, intrinsic)
    return dataclasses.replace(
        pred,
        extrinsic=ba.extrinsics,
        intrinsic=intrinsic,
        intrinsic_original=ba.intrinsics if pred.metas is not None else None,
        world_points_from_depth=points.astype(np.float32),
        track_features=None,
    )


def reconstruct(
    predictor: Predictor,
    images: np.ndarray,
    metas: list[ImageMeta] | None = None,
    *,
    names: list[str] | None = None,
    track_options: TrackOptions = DEFAULT_TRACK_OPTIONS,
    ba_options: BAOptions | None = DEFAULT_OPTIONS,
    pred: Predictions | None = None,
) -> Reconstruction:
    """Feed-forward predictions, tracks from several query frames and (``ba_options`` not None) bundle adjustment.

    ``images [S, 3, H, W]`` and ``metas`` as ``Predictor.__call__`` takes them; without metas the images are the
    originals. ``pred``: a forward already run with ``keep_track_features=True`` (else it is run here, and its
    track features are freed at the end).
    """
    report: dict = {}
    tic = time.perf_counter()
    own_forward = pred is None
    if own_forward:
        pred = predictor(images, None, metas, keep_track_features=True)
    report["forward_seconds"] = round(time.perf_counter() - tic, 3)
    tracks, frames, seconds = track_query_frames(predictor, images, pred, track_options)
    report.update(
        query_frames=frames, query_method=track_options.method, tracking_seconds=seconds, points=tracks.vis.shape[1]
    )
    ba = adjusted = None
    if ba_options is not None:
        if metas is not None:
            sizes = np.array([m.original_hw for m in metas])
            names = names or [m.name for m in metas]
            intrinsics = pred.intrinsic_original
        else:
            sizes = np.tile(images.shape[-2:], (len(images), 1))
            names = names or [f"frame_{i:04d}.png" for i in range(len(images))]
            intrinsics = pred.intrinsic
        ba = bundle_adjust(tracks, pred.extrinsic, intrinsics, sizes, names, ba_options)
        adjusted = adjusted_predictions(pred, ba)
        report["ba"] = ba.report
    if own_forward:
        pred.track_features = None  # the device buffers are not needed past the tracking
    return Reconstruction(pred, tracks, frames, ba, adjusted, report)
