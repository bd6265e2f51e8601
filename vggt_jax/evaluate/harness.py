"""What ``python -m vggt_jax.evaluate`` runs: model-free cases, saved predictions, or a model on ground-truth scenes.

Each returns columns of metrics (``vggt_jax.evaluate.metrics``): ``feed-forward`` and ``+BA`` side by side, and
for a model both ways of tracking from query frames other than 0 (``vggt_jax.reconstruct.pipeline``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from vggt_jax.evaluate.ground_truth import GroundTruth
from vggt_jax.evaluate.metrics import evaluate
from vggt_jax.evaluate.model_free import DEFAULT_NOISE, Noise, model_free_case
from vggt_jax.geometry import depth_to_world_points, warp_intrinsics
from vggt_jax.reconstruct.bundle import DEFAULT_OPTIONS, BAOptions, bundle_adjust


# ---------------------------------------------------------------------------------------------------- model-free
def model_free_rows(seeds, noise: Noise = DEFAULT_NOISE, ba: BAOptions = DEFAULT_OPTIONS, **case_kwargs) -> list[dict]:
    """One row per seed: the metrics of the perturbed cameras (``before``) and of the bundle adjustment
    (``after``), the reprojection RMSE, the planted outliers rejected and the BA seconds."""
    rows = []
    for seed in seeds:
        case = model_free_case(seed, noise, **case_kwargs)
        result = bundle_adjust(
            case.tracks, case.init["extrinsics"], case.init["intrinsics"], case.sizes, case.names, ba
        )
        before = evaluate(dict(extrinsics=case.init["extrinsics"], intrinsics=case.init["intrinsics"]), case.gt)
        after = evaluate(dict(extrinsics=result.extrinsics, intrinsics=result.intrinsics), case.gt)
        kept_outliers = int((case.outlier[:, result.point_index] & result.observed).sum())
        rows.append(
            dict(
                seed=seed,
                before=before,
                after=after,
                reproj_rmse_before=result.report["reproj_rmse_before"],
                reproj_rmse_after=result.report["reproj_rmse_after"],
                observations=result.report["observations"],
                outliers_planted=int(case.outlier.sum()),
                outliers_kept=kept_outliers,
                ba_seconds=result.report["seconds"],
                frames=len(case.names),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------------- predictions
def gt_depth_in_model_pixels(gt_depth: np.ndarray, scale_xy, offset_xy, hw: tuple[int, int]) -> np.ndarray:
    """Ground-truth depth ``[S, H0, W0]`` at the model input's pixels ``[S, H, W]`` (nearest; 0 outside)."""
    height, width = hw
    gx, gy = np.meshgrid(np.arange(width), np.arange(height))
    out = np.zeros((len(gt_depth), height, width), np.float64)
    for s, depth in enumerate(gt_depth):
        xo = np.round((gx + 0.5 - offset_xy[s][0]) / scale_xy[s][0] - 0.5).astype(int)
        yo = np.round((gy + 0.5 - offset_xy[s][1]) / scale_xy[s][1] - 0.5).astype(int)
        inside = (xo >= 0) & (yo >= 0) & (xo < depth.shape[1]) & (yo < depth.shape[0])
        out[s][inside] = depth[yo[inside], xo[inside]]
    return out


def _cloud(points: np.ndarray, conf: np.ndarray, max_points: int = 50_000, seed: int = 0) -> np.ndarray:
    """The predicted points at or above the median confidence, a uniform subset of at most ``max_points``."""
    keep = np.isfinite(points).all(-1) & (conf >= np.median(conf))
    pts = points[keep].astype(np.float64)
    if len(pts) > max_points:
        pts = pts[np.random.default_rng(seed).choice(len(pts), max_points, replace=False)]
    return pts


def prediction_inputs(arrays: dict, gt: GroundTruth, extrinsics=None, intrinsics_original=None) -> tuple[dict, dict]:
    """(pred, gt) metric inputs from ``predictions.npz`` arrays (``vggt_jax.inference.exports``), with other cameras
    (BA) if given; depth and points where the ground truth has depth."""
    extrinsics = arrays["extrinsic"] if extrinsics is None else extrinsics
    intrinsics_original = arrays["intrinsic_original"] if intrinsics_original is None else intrinsics_original
    pred = dict(extrinsics=extrinsics, intrinsics=intrinsics_original)
    gt_in = gt.metric_inputs()
    if gt.depth is not None and "depth" in arrays:
        hw = arrays["depth"].shape[1:]
        gt_in["depth"] = gt_depth_in_model_pixels(gt.depth, arrays["scale_xy"], arrays["offset_xy"], hw)
        pred["depth"] = arrays["depth"]
        # The given cameras in the model input's pixels (the preprocessing's warp, as ImageMeta applies it).
        k = np.stack(
            [
                warp_intrinsics(np.asarray(ki, np.float64), sc, of)
                for ki, sc, of in zip(intrinsics_original, arrays["scale_xy"], arrays["offset_xy"], strict=True)
            ]
        )
        points = depth_to_world_points(arrays["depth"].astype(np.float64), np.asarray(extrinsics, np.float64), k)
        pred["points"] = _cloud(points, arrays["depth_conf"])
    return pred, gt_in


def evaluate_output(out_dir: str | Path, gt: GroundTruth) -> dict[str, dict]:
    """Metrics of an ``infer.py`` output folder: ``feed-forward`` from ``predictions.npz`` and, if it holds them
    (``--ba``), ``+BA`` from ``ba_extrinsic`` / ``ba_intrinsic_original``."""
    from vggt_jax.inference.exports import load_predictions

    path = Path(out_dir)
    arrays = load_predictions(path / "predictions.npz" if path.is_dir() else path)
    if len(arrays["extrinsic"]) != len(gt.extrinsics):
        raise ValueError(
            f"the predictions have {len(arrays['extrinsic'])} frames, the ground truth {len(gt.extrinsics)}"
        )
    columns = {"feed-forward": evaluate(*prediction_inputs(arrays, gt))}
    if "ba_extrinsic" in arrays:
        columns["+BA"] = evaluate(
            *prediction_inputs(arrays, gt, arrays["ba_extrinsic"], arrays["ba_intrinsic_original"])
        )
    return columns


# ---------------------------------------------------------------------------------------------------- a model
def track_accuracy(tracks, gt: GroundTruth, query_frames: list[int]) -> dict[str, float]:
    """Per query frame ``q``: the median distance (original pixels) of the predicted track positions to the true
    ones over the other frames where the point is visible, the fraction within 4 px, and the median distance of a
    track that does not move (the query pixel everywhere), for scale."""
    out = {}
    for q in query_frames:
        sel = tracks.query_frame == q
        if not sel.any():
            continue
        true, visible = gt.track_fn(q, tracks.xy[q, sel])
        visible[q] = False
        visible &= tracks.vis[:, sel] > 0  # image-feature tracks: only where observed (the head's are soft, > 0)
        err = np.linalg.norm(tracks.xy[:, sel] - true, axis=-1)[visible]
        still = np.linalg.norm(tracks.xy[q, sel][None] - true, axis=-1)[visible]
        if len(err):
            out[f"track_err_median_q{q}"] = float(np.median(err))
            out[f"track_within4px_q{q}"] = float(np.mean(err < 4))
            out[f"track_err_median_static_q{q}"] = float(np.median(still))
    return out


def evaluate_model(
    predictor,
    gt: GroundTruth,
    *,
    target_size: int = 518,
    mode: str = "crop",
    track_options=None,
    ba: BAOptions = DEFAULT_OPTIONS,
    methods: tuple[str, ...] = ("reorder", "rerun"),
    tracker: str | None = None,
) -> dict[str, dict]:
    """Run ``predictor`` on the ground truth's images: ``feed-forward`` and ``+BA (<method>)`` per tracking
    method (``tracker``: ``reconstruct.trackers``, default the model's), with the tracks' accuracy where the ground
    truth knows them."""
    from PIL import Image

    from vggt_jax.inference.preprocess import load_and_preprocess_images
    from vggt_jax.reconstruct.pipeline import TrackOptions, reconstruct

    track_options = track_options or TrackOptions()
    source = [Image.fromarray(im) for im in gt.images] if gt.images is not None else gt.image_paths
    images, metas = load_and_preprocess_images(source, mode, target_size=target_size)
    tic = time.perf_counter()
    pred = predictor(images, None, metas, keep_track_features=True)
    forward = time.perf_counter() - tic
    arrays = dict(
        pred.arrays(), scale_xy=np.array([m.scale_xy for m in metas]), offset_xy=np.array([m.offset_xy for m in metas])
    )
    columns = {"feed-forward": dict(evaluate(*prediction_inputs(arrays, gt)), seconds=forward)}
    for method in methods:
        opts = dataclasses.replace(track_options, method=method)
        recon = reconstruct(
            predictor, images, metas, names=gt.names, track_options=opts, ba_options=ba, pred=pred, tracker=tracker
        )
        adjusted = recon.adjusted
        metrics = evaluate(*prediction_inputs(arrays, gt, adjusted.extrinsic, adjusted.intrinsic_original))
        if gt.track_fn is not None:
            metrics.update(track_accuracy(recon.tracks, gt, recon.query_frames))
        ba_report = recon.report["ba"]
        metrics.update(
            reproj_rmse_before=ba_report["reproj_rmse_before"],
            reproj_rmse_after=ba_report["reproj_rmse_after"],
            observations=ba_report["observations"],
            ba_run=float(ba_report["ba_run"]),
            frames_held_out=float(len(ba_report["held_out_frames"])),
            seconds=recon.report["tracking_seconds"] + ba_report["seconds"],
        )
        columns[f"+BA ({method})" if tracker in (None, "head") else f"+BA ({tracker}, {method})"] = metrics
    return columns
