"""Accuracy of a reconstruction against ground truth: cameras, trajectory, depth, point cloud.

* Cameras, as the VGGT paper reports them (after PoseDiffusion): for every pair ``i < j`` of frames, the relative
  rotation error (RRA) and the angle between the relative translations (RTA, folded to [0, 90]); RRA@30 / RTA@30 are
  the fractions of pairs under 30 degrees and AUC@30 the mean over thresholds 1..30 of the fraction of pairs whose
  larger error is under it. Pairs whose ground-truth baseline is ~0 have no translation direction: they count for
  RRA only. Invariant to the world frame and scale of either input.
* ATE: the camera centres aligned to the ground truth's by the Umeyama similarity (``evo_ape ... -as``), then the
  RMSE of the centre distances, in ground-truth units.
* Focal: relative error of ``fx`` and ``fy`` per frame (pixel sizes must match the ground truth's).
* Depth: the prediction scaled by one factor per scene, the median of ground truth / prediction over valid pixels
  (VGGT predicts up to scale), then AbsRel ``mean |d - d*| / d*`` and delta ``max(d / d*, d* / d) < 1.25``.
* Point cloud: the predicted points mapped into the ground truth's frame through camera 0 (VGGT predicts in its
  frame) at the depth metric's scale, then accuracy (mean distance of a predicted point to the nearest
  ground-truth point), completeness (the reverse) and Chamfer distance (their mean), on at most ``max_points`` of
  each. (The ATE similarity would need three cameras off one line, and would mix camera errors into the cloud's.)
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from vggt_jax.geometry import align_cameras, apply_similarity, camera_centers, relative_pose_errors


def auc(max_errors: np.ndarray, max_threshold: int = 30) -> float:
    """Mean over integer thresholds 1..max_threshold of the fraction of errors below it (PoseDiffusion's
    ``calculate_auc_np``)."""
    max_errors = np.asarray(max_errors)
    if len(max_errors) == 0:
        return float("nan")
    hist, _ = np.histogram(max_errors, bins=np.arange(max_threshold + 1))
    return float(np.mean(np.cumsum(hist.astype(np.float64) / len(max_errors))))


def pair_errors(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray, min_baseline: float = 1e-6):
    """(rotation errors, translation-direction errors, has-baseline mask) over the pairs ``i < j``, in degrees; a
    pair has a baseline when its ground-truth one exceeds ``min_baseline`` of the largest camera distance."""
    pred, gt = np.asarray(pred_extrinsics, np.float64), np.asarray(gt_extrinsics, np.float64)
    rot, trans, baseline = relative_pose_errors(pred, gt)
    i, j = np.triu_indices(len(gt), 1)
    centres = camera_centers(gt)
    extent = np.max(np.linalg.norm(centres - centres[0], axis=-1))
    return rot[i, j], trans[i, j], baseline[i, j] > min_baseline * extent


def camera_metrics(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> dict[str, float]:
    """RRA@30, RTA@30, AUC@30 (and @5, @15), median errors, over all pairs of frames (module docstring)."""
    rot, trans, moved = pair_errors(pred_extrinsics, gt_extrinsics)
    out = {"pairs": float(len(rot)), "rot_err_median": float(np.median(rot)) if len(rot) else float("nan")}
    out["rra30"] = float(np.mean(rot < 30)) if len(rot) else float("nan")
    if moved.any():
        out["rta30"] = float(np.mean(trans[moved] < 30))
        out["trans_err_median"] = float(np.median(trans[moved]))
        for threshold in (5, 15, 30):
            out[f"auc{threshold}"] = auc(np.maximum(rot[moved], trans[moved]), threshold)
    else:
        out.update(rta30=float("nan"), trans_err_median=float("nan"), auc5=float("nan"), auc15=float("nan"))
        out["auc30"] = float("nan")
    return out


def ate(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> tuple[float, tuple]:
    """(RMSE of the camera centres after the Umeyama similarity onto the ground truth, that similarity)."""
    sim = align_cameras(np.asarray(pred_extrinsics, np.float64), np.asarray(gt_extrinsics, np.float64))
    moved = apply_similarity(camera_centers(pred_extrinsics), *sim)
    return float(np.sqrt(np.mean(np.sum((moved - camera_centers(gt_extrinsics)) ** 2, -1)))), sim


def camera0_similarity(pred_camera0: np.ndarray, gt_camera0: np.ndarray, scale: float) -> tuple:
    """The similarity taking predicted world points to the ground truth's through camera 0: into the predicted
    camera 0, scaled by ``scale`` (the depth metric's median scale), out of the true camera 0."""
    rp, tp = np.asarray(pred_camera0[:, :3], np.float64), np.asarray(pred_camera0[:, 3], np.float64)
    rg, tg = np.asarray(gt_camera0[:, :3], np.float64), np.asarray(gt_camera0[:, 3], np.float64)
    return scale, rg.T @ rp, rg.T @ (scale * tp - tg)


def frame_rotation_errors(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> np.ndarray:
    """Per frame, degrees between the rotations of ``[S, 3, 4]`` cameras (both in the same frame, e.g. camera 0's)."""
    relative = np.einsum("sij,skj->sik", pred_extrinsics[:, :, :3], gt_extrinsics[:, :, :3])
    return np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)))


def focal_errors(pred_intrinsics: np.ndarray, gt_intrinsics: np.ndarray) -> np.ndarray:
    """``[S, 2]`` relative errors of (fx, fy)."""
    pred = np.stack([pred_intrinsics[:, 0, 0], pred_intrinsics[:, 1, 1]], -1)
    gt = np.stack([gt_intrinsics[:, 0, 0], gt_intrinsics[:, 1, 1]], -1)
    return pred / gt - 1


def depth_metrics(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """AbsRel and delta<1.25 after one median scale per scene; ``[S, H, W]`` each (``valid`` bool, default gt > 0)."""
    pred, gt = np.asarray(pred_depth, np.float64), np.asarray(gt_depth, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted depth {pred.shape} and ground truth {gt.shape} differ in shape")
    ok = (gt > 0) & (pred > 0) & np.isfinite(pred)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    if not ok.any():
        return {"depth_abs_rel": float("nan"), "depth_delta1.25": float("nan"), "depth_scale": float("nan")}
    scale = float(np.median(gt[ok] / pred[ok]))
    d, g = pred[ok] * scale, gt[ok]
    return {
        "depth_abs_rel": float(np.mean(np.abs(d - g) / g)),
        "depth_delta1.25": float(np.mean(np.maximum(d / g, g / d) < 1.25)),
        "depth_scale": scale,
    }


def _subsample(points: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 3)
    points = points[np.isfinite(points).all(-1)]
    return points[rng.choice(len(points), max_points, replace=False)] if len(points) > max_points else points


def pointcloud_metrics(pred_points: np.ndarray, gt_points: np.ndarray, max_points: int = 50_000, seed: int = 0):
    """Accuracy, completeness and Chamfer distance between point sets ``[N, 3]`` and ``[M, 3]`` (same frame)."""
    rng = np.random.default_rng(seed)
    pred, gt = _subsample(pred_points, max_points, rng), _subsample(gt_points, max_points, rng)
    if len(pred) == 0 or len(gt) == 0:
        return {"accuracy": float("nan"), "completeness": float("nan"), "chamfer": float("nan")}
    accuracy = float(np.mean(cKDTree(gt).query(pred)[0]))
    completeness = float(np.mean(cKDTree(pred).query(gt)[0]))
    return {"accuracy": accuracy, "completeness": completeness, "chamfer": (accuracy + completeness) / 2}


def evaluate(pred: dict, gt: dict, max_points: int = 50_000) -> dict[str, float]:
    """Every metric that ``pred`` and ``gt`` both have inputs for.

    Keys (numpy): ``extrinsics [S, 3, 4]`` (required, both), ``intrinsics [S, 3, 3]`` (the same pixels in both),
    ``depth [S, H, W]`` (and ``valid`` in ``gt``), ``points [N, 3]`` (the predicted cloud in the prediction's
    frame; the ground truth's in its own).
    """
    out = camera_metrics(pred["extrinsics"], gt["extrinsics"])
    if len(gt["extrinsics"]) >= 3:
        out["ate"], _ = ate(pred["extrinsics"], gt["extrinsics"])
    if "intrinsics" in pred and "intrinsics" in gt:
        err = np.abs(focal_errors(pred["intrinsics"], gt["intrinsics"]))
        out.update(focal_err_median=float(np.median(err)), focal_err_max=float(err.max()))
    if "depth" in pred and "depth" in gt:
        out.update(depth_metrics(pred["depth"], gt["depth"], gt.get("valid")))
    if "points" in pred and "points" in gt and np.isfinite(out.get("depth_scale", np.nan)):
        sim = camera0_similarity(pred["extrinsics"][0], gt["extrinsics"][0], out["depth_scale"])
        points = apply_similarity(np.asarray(pred["points"], np.float64), *sim)
        out.update(pointcloud_metrics(points, gt["points"], max_points))
    return out
