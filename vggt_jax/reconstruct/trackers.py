"""Trackers: where the bundle adjustment's multi-view tracks come from. Each takes (predictor, model-input images,
the forward's predictions) and returns ``Tracks`` in original pixels and a JSON-ready report.

* ``head`` (``HeadTracker``): VGGT's track head. Tracks start in frame 0 and ``query_frames - 1`` more frames
  (``select_query_frames``), at corner-like, confident pixels (``select_query_points``). The official track head was
  trained with its queries in frame 0, so a query frame ``q`` is tracked in one of two ways (``method``):

  * ``"reorder"``: the aggregator and the track head's feature extractor run once, in the original order; the
    tracker alone runs on those features with the frames reordered so ``q`` is first (``Predictor.track``).
  * ``"rerun"``: the whole model runs again on the frames reordered so ``q`` is first, as the model was trained
    (aggregator and track head both see ``q`` as the reference frame). One more forward per query frame.

* ``features`` (``FeatureTracker``): SIFT matched between the frame pairs the predicted cameras and depth say
  overlap, verified, merged (``reconstruct.features``). Needs no track head: VGGT-Omega's tracker.
* ``both`` (``UnionTracker``): the feature tracks, then the head's tracks that do not start within ``dedup_px`` of
  a feature track's observation in their query frame.

``default_tracker``: ``head`` where the model has a track head, ``features`` otherwise.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from scipy.spatial import cKDTree

from vggt_jax.inference.predictor import Predictions, Predictor
from vggt_jax.inference.preprocess import ImageMeta
from vggt_jax.reconstruct.bundle import Tracks
from vggt_jax.reconstruct.features import DEFAULT_FEATURE_OPTIONS, FeatureOptions, feature_tracks
from vggt_jax.reconstruct.queries import FRAME_RULES, select_query_frames, select_query_points

TRACKERS = ("head", "features", "both")

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
        parts = [_empty_tracks(len(images))]
    return Tracks.concatenate(parts), frames, {k: round(v, 3) for k, v in seconds.items()}


def _empty_tracks(num_frames: int) -> Tracks:
    s = num_frames
    return Tracks(np.zeros((s, 0, 2)), np.zeros((s, 0)), np.zeros(0, int), np.zeros((0, 3)), np.zeros((0, 3), np.uint8))


@dataclasses.dataclass(frozen=True)
class HeadTracker:
    options: TrackOptions = DEFAULT_TRACK_OPTIONS
    name = "head"

    def __call__(self, predictor: Predictor, images: np.ndarray, pred: Predictions) -> tuple[Tracks, dict]:
        tracks, frames, seconds = track_query_frames(predictor, images, pred, self.options)
        report = dict(
            query_frames=frames, query_method=self.options.method, seconds=seconds, tracks=tracks.vis.shape[1]
        )
        return tracks, report


@dataclasses.dataclass(frozen=True)
class FeatureTracker:
    options: FeatureOptions = DEFAULT_FEATURE_OPTIONS
    name = "features"

    def __call__(self, predictor: Predictor, images: np.ndarray, pred: Predictions) -> tuple[Tracks, dict]:
        """Pairs from the predicted points at or above each frame's median depth confidence, on its content."""
        points = pred.world_points_from_depth
        valid = np.isfinite(points).all(-1)
        valid &= pred.depth_conf >= np.median(pred.depth_conf.reshape(len(images), -1), axis=1)[:, None, None]
        masks = np.stack([m.content_mask() for m in pred.metas]) if pred.metas else None
        if masks is not None:
            valid &= masks
        found = feature_tracks(images, points, valid, pred.extrinsic, pred.intrinsic, masks, self.options)
        tracks = found.to_tracks(points, images)
        tracks.xy = _to_original(tracks.xy, pred.metas)
        return tracks, found.report


@dataclasses.dataclass(frozen=True)
class UnionTracker:
    """The first tracker's tracks, then each next one's that do not start within ``dedup_px`` (original pixels) of
    an observation of the tracks kept before in their query frame."""

    trackers: tuple
    dedup_px: float = 2.0
    name = "both"

    def __call__(self, predictor: Predictor, images: np.ndarray, pred: Predictions) -> tuple[Tracks, dict]:
        kept: list[Tracks] = []
        report = {}
        for tracker in self.trackers:
            tracks, sub = tracker(predictor, images, pred)
            duplicate = np.zeros(tracks.vis.shape[1], bool)
            for before in kept:
                for frame in np.unique(tracks.query_frame):
                    seen = before.vis[frame] > 0
                    if not seen.any():
                        continue
                    mine = np.nonzero(tracks.query_frame == frame)[0]
                    distance, _ = cKDTree(before.xy[frame, seen]).query(tracks.xy[frame, mine])
                    duplicate[mine[distance <= self.dedup_px]] = True
            kept.append(tracks.select(~duplicate))
            report[tracker.name] = dict(sub, duplicates_dropped=int(duplicate.sum()))
        return Tracks.concatenate(kept), report


def default_tracker(config) -> str:
    return "head" if config.track_head is not None else "features"


def make_tracker(
    name: str | None,
    config,
    track_options: TrackOptions = DEFAULT_TRACK_OPTIONS,
    feature_options: FeatureOptions = DEFAULT_FEATURE_OPTIONS,
):
    """The tracker ``name`` (``TRACKERS``; None: ``default_tracker``) for a model of ``config``."""
    name = name or default_tracker(config)
    if name not in TRACKERS:
        raise ValueError(f"tracker must be one of {', '.join(TRACKERS)}, got {name!r}")
    if name in ("head", "both") and config.track_head is None:
        raise ValueError(
            f"--tracker {name} needs a track head and this checkpoint's model ({config.name}) has none; use "
            "--tracker features"
        )
    head, features = HeadTracker(track_options), FeatureTracker(feature_options)
    return {"head": head, "features": features, "both": UnionTracker((features, head))}[name]
