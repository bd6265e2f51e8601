"""The stage between the model and the exports: multi-view tracks (``reconstruct.trackers``), then bundle adjustment.

    predictor = Predictor.from_checkpoint("facebook/VGGT-1B")
    images, metas = load_and_preprocess_images("photos/")
    recon = reconstruct(predictor, images, metas)          # feed-forward + tracks + BA
    recon.ba.reconstruction.write("sparse/0"); recon.adjusted   # pycolmap model; Predictions with the BA cameras

The tracker is the track head where the model has one and image features otherwise (``tracker=``: ``head``,
``features`` or ``both``). With ``fix_intrinsics`` (known cameras, ``inference.intrinsics``) the adjustment holds
the intrinsics of ``pred`` fixed (PINHOLE cameras) and refines poses and points only.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from vggt_jax.inference.predictor import Predictions, Predictor
from vggt_jax.inference.preprocess import ImageMeta
from vggt_jax.reconstruct.bundle import DEFAULT_OPTIONS, BAOptions, BAResult, Tracks, bundle_adjust
from vggt_jax.reconstruct.features import DEFAULT_FEATURE_OPTIONS, FeatureOptions
from vggt_jax.reconstruct.trackers import (
    DEFAULT_TRACK_OPTIONS,
    QUERY_METHODS,
    TrackOptions,
    make_tracker,
    track_query_frames,
)

__all__ = [
    "QUERY_METHODS",
    "Reconstruction",
    "TrackOptions",
    "adjusted_predictions",
    "reconstruct",
    "track_query_frames",
]


@dataclasses.dataclass
class Reconstruction:
    """``pred``: the feed-forward predictions; ``tracks``: every tracked point (original pixels); ``query_frames``
    (the head tracker's; empty for image features);
    ``ba``: the bundle adjustment (None if not run); ``adjusted``: ``pred`` with the BA cameras (and the depth
    unprojected with them); ``report``: seconds per stage and the BA report."""

    pred: Predictions
    tracks: Tracks
    query_frames: list[int]
    ba: BAResult | None
    adjusted: Predictions | None
    report: dict


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
    tracker: str | None = None,
    feature_options: FeatureOptions = DEFAULT_FEATURE_OPTIONS,
    fix_intrinsics: bool = False,
) -> Reconstruction:
    """Feed-forward predictions, tracks (``tracker``, module docstring) and (``ba_options`` not None) bundle
    adjustment.

    ``images [S, 3, H, W]`` and ``metas`` as ``Predictor.__call__`` takes them; without metas the images are the
    originals. ``pred``: a forward already run with ``keep_track_features=True`` (else it is run here, and its
    track features are freed at the end).
    """
    report: dict = {}
    tic = time.perf_counter()
    track = make_tracker(tracker, predictor.config, track_options, feature_options)
    own_forward = pred is None
    if own_forward:
        pred = predictor(images, None, metas, keep_track_features=track.name != "features")
    report["forward_seconds"] = round(time.perf_counter() - tic, 3)
    tic = time.perf_counter()
    tracks, tracking = track(predictor, images, pred)
    frames = tracking.get("query_frames", tracking.get("head", {}).get("query_frames", []))
    report.update(
        tracker=track.name,
        tracking=tracking,
        tracking_seconds=round(time.perf_counter() - tic, 3),
        query_frames=frames,
        points=tracks.vis.shape[1],
    )
    ba = adjusted = None
    if ba_options is not None and fix_intrinsics:
        ba_options = dataclasses.replace(
            ba_options, camera_model="PINHOLE", refine_focal_length=False, refine_principal_point=False
        )
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
