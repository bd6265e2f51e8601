"""Evaluation metrics on held-out scenes: camera AUC@30 (RRA/RTA), depth AbsRel and delta < 1.25, point error.

``batch_metrics`` runs inside the jitted eval step and returns small per-scene arrays (pairwise pose errors, sums
and counts), so gathering them is cheap on any mesh; ``summarise`` reduces a list of them on the host.

* Cameras (as VGGT/PoseDiffusion evaluate on CO3D): for every ordered pair i < j of real frames, the relative
  pose ``E_j E_i^-1`` of prediction and ground truth; RRA error = angle of ``R_pred^T R_gt``, RTA error = angle
  between the relative translations, folded to [0, 90] (the sign of a direction is ambiguous). AUC@30 = mean over
  thresholds 1..30 degrees of the fraction of pairs with max(RRA, RTA error) below it.
* Camera spread: how much the predicted poses of frames 1..S-1 (translation and quaternion, camera 0's frame) vary
  over the evaluation set, as a fraction of how much the ground truth varies: sqrt(sum of the 7 components'
  variances) over the same for the ground truth. A head that predicts one pose whatever the images (the average
  trajectory, which already earns some AUC) scores 0; a head that follows the images, about 1.
* Depth: per scene, the prediction is scaled by the median of gt / pred over valid pixels (the model predicts at
  the normalised scale, which this alignment leaves unchanged when it is right), then AbsRel = mean |d - d*| / d*
  and delta = fraction with max(d / d*, d* / d) < 1.25.
* Points: mean Euclidean distance between predicted and ground-truth world points over valid pixels, in the
  normalised frame the model predicts (camera 0, unit mean point distance), no alignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.evaluate.metrics import auc
from vggt_jax.geometry import alignment, extri_intri_to_pose_encoding, pose_encoding_to_extri_intri
from vggt_jax.train.losses import kth_smallest


def relative_pose_errors(
    pred_extrinsics: jax.Array, gt_extrinsics: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``[B, S, 3, 4]`` camera-from-world each -> (rotation error, translation-direction error) ``[B, S, S]`` in
    degrees for every ordered pair (i, j), and the ground-truth baseline ``[B, S, S]`` (``geometry.alignment``)."""
    return alignment.relative_pose_errors(pred_extrinsics, gt_extrinsics, xnp=jnp)


def _masked_median(x: jax.Array, valid: jax.Array) -> jax.Array:
    n = jnp.sum(valid)
    return kth_smallest(x, valid, jnp.maximum((n + 1) // 2, 1))


def batch_metrics(pred: Mapping[str, jax.Array], gt: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Per-scene quantities for ``summarise``. ``gt`` is the normalised batch (``step.normalise_batch``)."""
    out: dict[str, jax.Array] = {}
    b, s = gt["point_masks"].shape[:2]
    frame_mask = gt.get("frame_mask", jnp.ones((b, s), bool))
    if "pose_enc" in pred:
        image_hw = gt["depths"].shape[-2:]
        pred_ext, _ = pose_encoding_to_extri_intri(pred["pose_enc"].astype(jnp.float32), image_hw, xnp=jnp)
        rot, trans, baseline = relative_pose_errors(pred_ext, gt["extrinsics"].astype(jnp.float32))
        upper = jnp.triu(jnp.ones((s, s), bool), k=1)
        pairs = upper & frame_mask[:, :, None] & frame_mask[:, None]
        out.update(pose_rot_err=rot, pose_trans_err=trans, pose_pair_mask=pairs, pose_has_baseline=baseline > 1e-4)
        gt_enc = extri_intri_to_pose_encoding(gt["extrinsics"], gt["intrinsics"], image_hw, xnp=jnp)
        out.update(
            pose_enc_pred=pred["pose_enc"][..., :7].astype(jnp.float32),
            pose_enc_gt=gt_enc[..., :7].astype(jnp.float32),
            pose_enc_mask=frame_mask & (jnp.arange(s) > 0),
        )
    mask = gt["point_masks"]
    count = jnp.sum(mask, axis=(1, 2, 3))
    out["pixel_count"] = count
    if "depth" in pred:
        d, g = pred["depth"][..., 0].astype(jnp.float32), gt["depths"].astype(jnp.float32)
        valid = mask & (d > 0) & (g > 0)
        ratio = jnp.where(valid, g / jnp.where(valid, d, 1), 0)
        scale = jax.vmap(_masked_median)(ratio, valid)
        d = d * scale[:, None, None, None]
        safe_g, safe_d = jnp.where(valid, g, 1), jnp.where(valid, d, 1)
        out["depth_abs_rel_sum"] = jnp.sum(jnp.where(valid, jnp.abs(d - g) / safe_g, 0), axis=(1, 2, 3))
        out["depth_delta_sum"] = jnp.sum(valid & (jnp.maximum(safe_d / safe_g, safe_g / safe_d) < 1.25), axis=(1, 2, 3))
        out["depth_count"] = jnp.sum(valid, axis=(1, 2, 3))
    if "world_points" in pred:
        err = jnp.linalg.norm(
            pred["world_points"].astype(jnp.float32) - gt["world_points"].astype(jnp.float32), axis=-1
        )
        out["point_err_sum"] = jnp.sum(jnp.where(mask, err, 0), axis=(1, 2, 3))
    return out


def _concat(outputs: Sequence[Mapping[str, np.ndarray]], key: str, trailing: int = 0) -> np.ndarray:
    """``key`` of every output, flattened over all but its last ``trailing`` dims and concatenated."""
    return np.concatenate(
        [np.asarray(o[key]).reshape(-1, *np.shape(o[key])[np.ndim(o[key]) - trailing :]) for o in outputs]
    )


def pose_spread(outputs: Sequence[Mapping[str, np.ndarray]]) -> float:
    """The camera spread (module docstring) of ``batch_metrics`` outputs; NaN when the ground truth does not vary."""
    mask = _concat(outputs, "pose_enc_mask").astype(bool)
    pred = _concat(outputs, "pose_enc_pred", 1)[mask].astype(np.float64)
    gt = _concat(outputs, "pose_enc_gt", 1)[mask].astype(np.float64)
    gt_spread = np.sqrt(np.sum(np.var(gt, axis=0))) if len(gt) > 1 else 0.0
    return float(np.sqrt(np.sum(np.var(pred, axis=0))) / gt_spread) if gt_spread > 0 else float("nan")


def summarise(outputs: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Host-side reduction of ``batch_metrics`` outputs (and ``loss/*`` means) over an evaluation set."""
    cat = lambda k: _concat(outputs, k)  # noqa: E731
    res: dict[str, float] = {}
    keys = outputs[0].keys()
    for k in keys:
        if k.startswith("loss/"):
            res[k] = float(np.mean([np.asarray(o[k]) for o in outputs]))
    if "pose_rot_err" in keys:
        pair = cat("pose_pair_mask").astype(bool)
        moved = pair & cat("pose_has_baseline").astype(bool)
        rot = cat("pose_rot_err")[pair]
        rot_m, trans_m = cat("pose_rot_err")[moved], cat("pose_trans_err")[moved]
        res["camera_auc30"] = auc(np.maximum(rot_m, trans_m), 30)
        res["camera_rra30"] = float(np.mean(rot < 30)) if len(rot) else float("nan")
        res["camera_rta30"] = float(np.mean(trans_m < 30)) if len(trans_m) else float("nan")
        res["camera_rot_err_median"] = float(np.median(rot)) if len(rot) else float("nan")
        res["camera_pairs"] = float(len(rot))
        res["camera_pairs_with_baseline"] = float(len(rot_m))
        if "pose_enc_pred" in keys:
            res["camera_spread"] = pose_spread(outputs)
    if "depth_abs_rel_sum" in keys:
        n = max(cat("depth_count").sum(), 1)
        res["depth_abs_rel"] = float(cat("depth_abs_rel_sum").sum() / n)
        res["depth_delta1.25"] = float(cat("depth_delta_sum").sum() / n)
    if "point_err_sum" in keys:
        res["point_err"] = float(cat("point_err_sum").sum() / max(cat("pixel_count").sum(), 1))
    return res
