"""The official training losses (``training/loss.py``) as pure, jit-compatible functions, plus a track loss.

Upstream selects valid pixels with boolean indexing (``gt[mask]``) and filters outliers with a quantile, both with
data-dependent shapes. Here every quantity stays dense with a validity mask beside it: means are masked sums over
masked counts, and the quantile is the k-th smallest valid entry (sort with invalid entries pushed to +inf), with
k computed exactly as ``torch_quantile(..., interpolation="nearest")`` (``kthvalue`` at ``round(q (n - 1)) + 1``,
Python's round-half-to-even). Clamps and the inf/NaN fix-ups use torch's gradient conventions (a clamp passes the
gradient at its boundary; a zero-length vector has a zero norm gradient), so values and gradients equal upstream's
(shared/fixtures ``losses.npz``, tests/train/test_losses.py).

Layouts: ``pose_enc_list [n, B, S, 9]``, ``depth [B, S, H, W, 1]``, ``depth_conf [B, S, H, W]``,
``world_points [B, S, H, W, 3]``, ``world_points_conf [B, S, H, W]``, ``track_list [n, B, S, N, 2]`` (pixels),
``vis``/``conf`` ``[B, S, N]`` logits; the batch holds ``extrinsics [B, S, 3, 4]``, ``intrinsics [B, S, 3, 3]``,
``depths [B, S, H, W]``, ``world_points [B, S, H, W, 3]``, ``point_masks [B, S, H, W]`` bool (already normalised, see
``normalization.py``), optionally ``frame_mask [B, S]``, ``tracks [B, S, N, 2]``, ``track_vis [B, S, N]``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vggt_jax.geometry import extri_intri_to_pose_encoding

HARD_MAX = 100.0
# Upstream subsamples 1M entries at random above this size; a loss group must stay below it (see loss_groups).
MAX_QUANTILE_ELEMENTS = 100_000_000


# ----------------------------------------------------------------------------------------------------------------
# torch semantics
# ----------------------------------------------------------------------------------------------------------------


def clamp(x: jax.Array, lo: float | None = None, hi: float | None = None) -> jax.Array:
    """``torch.clamp``, gradient included: it passes where ``lo <= x <= hi`` (the boundaries too; jnp.clip's
    max/min would halve it at a tie)."""
    if lo is not None:
        x = jnp.where(x < lo, jnp.asarray(lo, x.dtype), x)
    if hi is not None:
        x = jnp.where(x > hi, jnp.asarray(hi, x.dtype), x)
    return x


def check_and_fix_inf_nan(x: jax.Array, hard_max: float | None = HARD_MAX) -> jax.Array:
    """Upstream's ``check_and_fix_inf_nan``: inf/NaN -> 0, then clamp to [-hard_max, hard_max] unless None."""
    x = jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))
    return x if hard_max is None else clamp(x, -hard_max, hard_max)


def safe_norm(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """Euclidean norm whose gradient at the zero vector is 0, as torch's (jnp.linalg.norm's would be NaN)."""
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1)), 0)


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` over ``mask`` (broadcast to x); 0 when the mask is empty, with finite gradients."""
    mask = jnp.broadcast_to(mask, x.shape)
    count = jnp.sum(mask)
    return jnp.sum(jnp.where(mask, x, 0)) / jnp.maximum(count, 1).astype(x.dtype)


@functools.cache
def _rank_ratio(q: float, max_count: int) -> tuple[int, int]:
    """A ratio p/r with ``round(q * m) == round_half_even(p m / r)`` for every m < max_count, checked exhaustively.

    torch_quantile rounds the float64 product ``q * (n - 1)``; integer arithmetic reproduces it on every backend
    (TPUs have no float64) once q is a ratio with a small denominator, as every ``valid_range`` in use (0.98) is.
    """
    frac = Fraction(q).limit_denominator(10_000)
    p, r = frac.numerator, frac.denominator
    if p * max_count >= 2**31:
        raise ValueError(f"quantile {q}: {max_count} elements overflow the int32 rank computation")
    m = np.arange(max_count, dtype=np.int64)
    a = p * m
    d, rem = a // r, a % r
    exact = d + ((2 * rem > r) | ((2 * rem == r) & (d % 2 == 1)))
    if not np.array_equal(exact, np.round(q * m).astype(np.int64)):
        raise ValueError(f"quantile {q} is not a short decimal; use a valid_range like 0.98 or 0.95")
    return p, r


def nearest_rank(count: jax.Array, q: float, max_count: int) -> jax.Array:
    """``round(q * (count - 1)) + 1``: the 1-based rank ``torch_quantile(interpolation='nearest')`` passes to
    ``kthvalue``, for a traced int ``count`` in [1, max_count]."""
    p, r = _rank_ratio(float(q), max(int(max_count), 1))
    a = p * (count.astype(jnp.int32) - 1)
    d, rem = a // r, a % r
    up = (2 * rem > r) | ((2 * rem == r) & (d % 2 == 1))
    return d + up.astype(jnp.int32) + 1


def kth_smallest(x: jax.Array, valid: jax.Array, k: jax.Array) -> jax.Array:
    """``torch.kthvalue`` over the valid entries of ``x`` (any shape): the k-th smallest, k 1-based."""
    flat = jnp.where(valid, x, jnp.inf).reshape(-1)
    return jnp.sort(flat)[jnp.clip(k - 1, 0, flat.size - 1)]


def filter_by_quantile(
    x: jax.Array, valid: jax.Array, q: float, min_elements: int = 1000, hard_max: float = HARD_MAX
) -> tuple[jax.Array, jax.Array]:
    """Upstream's ``filter_by_quantile`` on the valid entries of ``x``: with more than ``min_elements`` of them,
    clamp at ``hard_max`` and keep the entries below the (detached) q-quantile if more than ``min_elements``
    remain. Returns the (possibly clamped) values and the mask of kept entries."""
    if x.size > MAX_QUANTILE_ELEMENTS:
        raise ValueError(
            f"{x.size} loss entries in one group: upstream subsamples above {MAX_QUANTILE_ELEMENTS}; use smaller "
            "loss groups (config.loss.group_size)"
        )
    n = jnp.sum(valid)
    clamped = clamp(x, hi=hard_max)
    k = nearest_rank(n, q, x.size)
    thresh = jnp.minimum(jax.lax.stop_gradient(kth_smallest(clamped, valid, k)), hard_max)
    keep = valid & (clamped < thresh)
    kept = jnp.where(jnp.sum(keep) > min_elements, keep, valid)
    active = n > min_elements
    return jnp.where(active, clamped, x), jnp.where(active, kept, valid)


# ----------------------------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------------------------


def camera_loss_single(
    pred: jax.Array, gt: jax.Array, weight: jax.Array, loss_type: str = "l1"
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Translation, rotation and FoV losses of ``pred, gt: [B, S, 9]`` averaged over ``weight [B, S]`` (bool)."""
    if loss_type == "l1":
        d = jnp.abs(pred - gt)
        loss_t, loss_r, loss_fl = d[..., :3], d[..., 3:7], d[..., 7:]
    elif loss_type == "l2":
        loss_t = safe_norm(pred[..., :3] - gt[..., :3], keepdims=True)
        loss_r = safe_norm(pred[..., 3:7] - gt[..., 3:7])
        loss_fl = safe_norm(pred[..., 7:] - gt[..., 7:])
    else:
        raise ValueError(f"unknown camera loss_type {loss_type!r}; use 'l1' or 'l2'")
    loss_t = clamp(check_and_fix_inf_nan(loss_t), hi=HARD_MAX)
    loss_r, loss_fl = check_and_fix_inf_nan(loss_r), check_and_fix_inf_nan(loss_fl)
    w = lambda x: weight.reshape(weight.shape + (1,) * (x.ndim - weight.ndim))  # noqa: E731
    return masked_mean(loss_t, w(loss_t)), masked_mean(loss_r, w(loss_r)), masked_mean(loss_fl, w(loss_fl))


def compute_camera_loss(
    pose_enc_list: jax.Array,
    gt_pose_encoding: jax.Array,
    point_masks: jax.Array,
    frame_mask: jax.Array | None = None,
    loss_type: str = "l1",
    gamma: float = 0.6,
    weight_trans: float = 1.0,
    weight_rot: float = 1.0,
    weight_focal: float = 0.5,
) -> dict[str, jax.Array]:
    """Camera loss over every refinement stage, stage i weighted ``gamma ** (n - i - 1)``, summed and divided by n.

    Only batch items whose frame 0 has more than 100 valid pixels count (upstream's ``valid_frame_mask``); padded
    frames (``frame_mask`` False) do not count either.
    """
    n = pose_enc_list.shape[0]
    valid_item = jnp.sum(point_masks[:, 0], axis=(-1, -2)) > 100
    weight = jnp.broadcast_to(valid_item[:, None], pose_enc_list.shape[1:3])
    if frame_mask is not None:
        weight = weight & frame_mask
    gt = gt_pose_encoding.astype(pose_enc_list.dtype)
    total_t = total_r = total_fl = 0.0
    for i in range(n):
        loss_t, loss_r, loss_fl = camera_loss_single(pose_enc_list[i], gt, weight, loss_type)
        stage_weight = gamma ** (n - i - 1)
        total_t, total_r, total_fl = (
            total_t + loss_t * stage_weight,
            total_r + loss_r * stage_weight,
            total_fl + loss_fl * stage_weight,
        )
    loss_t, loss_r, loss_fl = total_t / n, total_r / n, total_fl / n
    return {
        "loss_camera": loss_t * weight_trans + loss_r * weight_rot + loss_fl * weight_focal,
        "loss_T": loss_t,
        "loss_R": loss_r,
        "loss_FL": loss_fl,
    }


# ----------------------------------------------------------------------------------------------------------------
# Depth and points
# ----------------------------------------------------------------------------------------------------------------


def gradient_loss(prediction: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """L1 difference of horizontal and vertical finite differences of the masked error, ``[N, H, W, C]`` inputs,
    ``mask [N, H, W]``; normalised by the number of valid entries (0 if none)."""
    m = jnp.broadcast_to(mask[..., None], prediction.shape).astype(prediction.dtype)
    count = jnp.sum(m)
    diff = (prediction - target) * m
    grad_x = clamp(jnp.abs(diff[:, :, 1:] - diff[:, :, :-1]) * (m[:, :, 1:] * m[:, :, :-1]), hi=HARD_MAX)
    grad_y = clamp(jnp.abs(diff[:, 1:] - diff[:, :-1]) * (m[:, 1:] * m[:, :-1]), hi=HARD_MAX)
    total = jnp.sum(grad_x) + jnp.sum(grad_y)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), 0)


def point_map_to_normal(points: jax.Array, mask: jax.Array, eps: float = 1e-6) -> tuple[jax.Array, jax.Array]:
    """Normals from the four neighbour cross products (up x left, left x down, down x right, right x up) of
    ``points [N, H, W, 3]`` (zero-padded) -> ``normals [4, N, H, W, 3]`` (``F.normalize``), ``valid [4, N, H, W]``."""
    pm = jnp.pad(mask, ((0, 0), (1, 1), (1, 1)))
    pts = jnp.pad(points, ((0, 0), (1, 1), (1, 1), (0, 0)))
    center = pts[:, 1:-1, 1:-1]
    up, left = pts[:, :-2, 1:-1] - center, pts[:, 1:-1, :-2] - center
    down, right = pts[:, 2:, 1:-1] - center, pts[:, 1:-1, 2:] - center
    normals = jnp.stack(
        [jnp.cross(up, left), jnp.cross(left, down), jnp.cross(down, right), jnp.cross(right, up)], axis=0
    )
    c = pm[:, 1:-1, 1:-1]
    m_up, m_left, m_down, m_right = pm[:, :-2, 1:-1], pm[:, 1:-1, :-2], pm[:, 2:, 1:-1], pm[:, 1:-1, 2:]
    valid = jnp.stack([m_up & c & m_left, m_left & c & m_down, m_down & c & m_right, m_right & c & m_up], axis=0)
    norm = clamp(safe_norm(normals, keepdims=True), lo=eps)
    return normals / norm, valid


def normal_loss(prediction: jax.Array, target: jax.Array, mask: jax.Array, cos_eps: float = 1e-8) -> jax.Array:
    """Mean ``1 - cos`` between predicted and target normals where both are valid; 0 below 10 valid normals."""
    pred_n, pred_valid = point_map_to_normal(prediction, mask, eps=cos_eps)
    gt_n, gt_valid = point_map_to_normal(target, mask, eps=cos_eps)
    valid = pred_valid & gt_valid
    dot = clamp(jnp.sum(pred_n * gt_n, axis=-1), -1 + cos_eps, 1 - cos_eps)
    loss = check_and_fix_inf_nan(1 - dot)
    return jnp.where(jnp.sum(valid) >= 10, masked_mean(loss, valid), 0)


def multi_scale(fn, prediction: jax.Array, target: jax.Array, mask: jax.Array, scales: int) -> jax.Array:
    """Average of ``fn`` over strides 1, 2, 4, ... (``gradient_loss_multi_scale_wrapper``)."""
    total = 0.0
    for scale in range(scales):
        s = 2**scale
        total = total + fn(prediction[:, ::s, ::s], target[:, ::s, ::s], mask[:, ::s, ::s])
    return total / scales


def regression_loss(
    pred: jax.Array,
    gt: jax.Array,
    mask: jax.Array,
    conf: jax.Array,
    gradient_loss_fn: str | None = None,
    gamma: float = 1.0,
    alpha: float = 0.2,
    valid_range: float = -1,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(loss_conf, loss_grad, loss_reg)`` of ``pred, gt [B, S, H, W, C]`` over ``mask [B, S, H, W]``.

    ``loss_reg = |gt - pred|`` per pixel; ``loss_conf = gamma * loss_reg * conf - alpha * log(conf)`` (aleatoric
    uncertainty); each quantile-filtered at ``valid_range`` if > 0 and averaged. ``gradient_loss_fn``: "grad"
    (4-scale gradient loss) or "normal" (3-scale normal loss); the confidence-weighted "conf" variants of upstream
    are not supported (no config uses them).
    """
    b, s, h, w, c = pred.shape
    loss_reg = check_and_fix_inf_nan(safe_norm(gt - pred))
    loss_conf = check_and_fix_inf_nan(gamma * loss_reg * conf - alpha * jnp.log(conf))

    fn = gradient_loss_fn or ""
    if "conf" in fn:
        raise NotImplementedError(f"confidence-weighted gradient losses ({fn!r}) are not implemented")
    flat = lambda x: x.reshape(b * s, h, w, *x.shape[4:])  # noqa: E731
    if "normal" in fn:
        loss_grad = multi_scale(normal_loss, flat(pred), flat(gt), flat(mask), scales=3)
    elif "grad" in fn:
        loss_grad = multi_scale(gradient_loss, flat(pred), flat(gt), flat(mask), scales=4)
    else:
        loss_grad = jnp.zeros((), pred.dtype)

    def reduce(x):
        valid = mask
        if valid_range > 0:
            x, valid = filter_by_quantile(x, mask, valid_range)
        return masked_mean(check_and_fix_inf_nan(x), valid)

    return reduce(loss_conf), loss_grad, reduce(loss_reg)


def _dense_loss(pred, conf, gt, mask, suffix, gamma=1.0, alpha=0.2, gradient_loss_fn=None, valid_range=-1.0):
    loss_conf, loss_grad, loss_reg = regression_loss(
        pred, gt, mask, conf, gradient_loss_fn=gradient_loss_fn, gamma=gamma, alpha=alpha, valid_range=valid_range
    )
    # Fewer than 100 valid pixels in the whole batch: upstream skips the batch with a zero loss.
    enough = jnp.sum(mask) >= 100
    zero = jnp.zeros((), pred.dtype)
    return {
        f"loss_conf_{suffix}": jnp.where(enough, loss_conf, zero),
        f"loss_reg_{suffix}": jnp.where(enough, loss_reg, zero),
        f"loss_grad_{suffix}": jnp.where(enough, loss_grad, zero),
    }


def compute_depth_loss(depth, depth_conf, gt_depths, point_masks, **kwargs) -> dict[str, jax.Array]:
    """``depth [B, S, H, W, 1]``, ``depth_conf [B, S, H, W]`` against ``gt_depths [B, S, H, W]``."""
    gt = check_and_fix_inf_nan(gt_depths)[..., None]
    return _dense_loss(depth, depth_conf, gt.astype(depth.dtype), point_masks, "depth", **kwargs)


def compute_point_loss(world_points, world_points_conf, gt_points, point_masks, **kwargs) -> dict[str, jax.Array]:
    """``world_points [B, S, H, W, 3]``, ``world_points_conf [B, S, H, W]`` against ``gt_points``."""
    gt = check_and_fix_inf_nan(gt_points)
    return _dense_loss(world_points, world_points_conf, gt.astype(world_points.dtype), point_masks, "point", **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Tracks (upstream ships only commented-out code; this follows it: CoTracker's sequence loss + two BCE terms)
# ----------------------------------------------------------------------------------------------------------------


def compute_track_loss(
    track_list: jax.Array,
    vis_logits: jax.Array,
    conf_logits: jax.Array | None,
    gt_tracks: jax.Array,
    gt_vis: jax.Array,
    frame_mask: jax.Array | None = None,
    point_mask: jax.Array | None = None,
    gamma: float = 0.8,
    conf_threshold: float = 3.0,
) -> dict[str, jax.Array]:
    """Sequence loss over the tracker iterations plus visibility and confidence BCE on logits.

    Tracks count if visible in frame 0. ``loss_track = sum_i gamma^(n-i-1) mean|pred_i - gt| / n`` over the
    (track, frame) pairs that are also visible (0 if at most 2); ``loss_vis`` = BCE(vis, gt_vis) over all frames of
    the counted tracks; ``loss_conf_track`` = BCE(conf, |gt - pred_last| < 3 px) likewise.
    """
    n = track_list.shape[0]
    gt_tracks = check_and_fix_inf_nan(gt_tracks, hard_max=None).astype(track_list.dtype)
    valids = jnp.broadcast_to(gt_vis[:, :1, :], gt_vis.shape)
    if frame_mask is not None:
        valids = valids & frame_mask[:, :, None]
    if point_mask is not None:
        valids = valids & point_mask[:, None, :]
    combined = valids & gt_vis
    enough = jnp.sum(combined) > 2
    flow = 0.0
    for i in range(n):
        err = jnp.mean(check_and_fix_inf_nan(jnp.abs(track_list[i] - gt_tracks), hard_max=None), axis=-1)
        flow = flow + gamma ** (n - i - 1) * jnp.where(enough, masked_mean(err, combined), 0)
    any_valid = jnp.any(valids)
    zero = jnp.zeros((), track_list.dtype)
    out = {"loss_track": jnp.where(any_valid, flow / n, zero)}
    vis_bce = optax.sigmoid_binary_cross_entropy(vis_logits.astype(track_list.dtype), gt_vis.astype(track_list.dtype))
    out["loss_vis"] = jnp.where(any_valid, check_and_fix_inf_nan(masked_mean(vis_bce, valids), None), zero)
    if conf_logits is not None:
        close = safe_norm(jax.lax.stop_gradient(gt_tracks - track_list[-1])) < conf_threshold
        conf_bce = optax.sigmoid_binary_cross_entropy(
            conf_logits.astype(track_list.dtype), close.astype(track_list.dtype)
        )
        out["loss_conf_track"] = jnp.where(any_valid, check_and_fix_inf_nan(masked_mean(conf_bce, valids), None), zero)
    else:
        out["loss_conf_track"] = zero
    return out


# ----------------------------------------------------------------------------------------------------------------
# All together
# ----------------------------------------------------------------------------------------------------------------

_BATCH_AXIS_1 = ("pose_enc_list", "track_list")


def multitask_loss_single(pred: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], config: Any) -> dict:
    """Upstream's ``MultitaskLoss`` on one loss group. ``config``: mapping with ``camera``, ``depth``, ``point``,
    ``track`` (each a mapping with ``weight`` and the loss's keyword arguments, or None to disable it)."""
    terms: dict[str, jax.Array] = {}
    objective = 0.0
    point_masks = batch["point_masks"]
    frame_mask = batch.get("frame_mask")
    if frame_mask is not None:
        point_masks = point_masks & frame_mask[:, :, None, None]
    cfg = lambda name: None if config.get(name) is None else dict(config[name])  # noqa: E731

    if (camera := cfg("camera")) is not None and "pose_enc_list" in pred:
        weight = camera.pop("weight")
        image_hw = batch["depths"].shape[-2:]
        gt_enc = extri_intri_to_pose_encoding(batch["extrinsics"], batch["intrinsics"], image_hw, xnp=jnp)
        t = compute_camera_loss(pred["pose_enc_list"], gt_enc, point_masks, frame_mask, **camera)
        objective = objective + t["loss_camera"] * weight
        terms.update(t)
    if (depth := cfg("depth")) is not None and "depth" in pred:
        weight = depth.pop("weight")
        t = compute_depth_loss(pred["depth"], pred["depth_conf"], batch["depths"], point_masks, **depth)
        objective = objective + (t["loss_conf_depth"] + t["loss_reg_depth"] + t["loss_grad_depth"]) * weight
        terms.update(t)
    if (point := cfg("point")) is not None and "world_points" in pred:
        weight = point.pop("weight")
        t = compute_point_loss(
            pred["world_points"], pred["world_points_conf"], batch["world_points"], point_masks, **point
        )
        objective = objective + (t["loss_conf_point"] + t["loss_reg_point"] + t["loss_grad_point"]) * weight
        terms.update(t)
    if (track := cfg("track")) is not None and "track_list" in pred:
        weight = track.pop("weight")
        vis_weight, conf_weight = track.pop("vis_weight", 1.0), track.pop("conf_weight", 1.0)
        t = compute_track_loss(
            pred["track_list"],
            pred["vis"],
            pred.get("conf"),
            batch["tracks"],
            batch["track_vis"],
            frame_mask,
            batch.get("track_mask"),
            **track,
        )
        objective = (
            objective + (t["loss_track"] + vis_weight * t["loss_vis"] + conf_weight * t["loss_conf_track"]) * weight
        )
        terms.update(t)
    terms["objective"] = jnp.asarray(objective)
    return terms


def multitask_loss(
    pred: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], config: Any, group_size: int = 0
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """-> (objective, {term: value}): the mean over loss groups of ``multitask_loss_single``.

    Upstream computes the loss per GPU on its local batch (quantiles, valid-item means) and DDP averages the
    gradients, so the objective is the mean over per-GPU losses. ``group_size`` fixes those groups independently
    of the mesh: consecutive chunks of ``group_size`` batch items (0: the whole batch is one group). With groups
    aligned to the data shards, the quantile sorts stay on their device.
    """
    b = batch["point_masks"].shape[0]
    g = group_size or b
    if b % g:
        raise ValueError(f"batch size {b} is not a multiple of the loss group size {g}")
    if g == b:
        terms = multitask_loss_single(pred, batch, config)
        return terms["objective"], terms

    def split(key, x):
        axis = 1 if key in _BATCH_AXIS_1 else 0
        x = jnp.moveaxis(x, axis, 0)
        return x.reshape(b // g, g, *x.shape[1:])

    def unsplit_group(key, x):
        return jnp.moveaxis(x, 0, 1) if key in _BATCH_AXIS_1 else x

    grouped_pred = {k: split(k, v) for k, v in pred.items()}
    grouped_batch = {k: split(k, v) for k, v in batch.items()}

    def one(p, bt):
        return multitask_loss_single({k: unsplit_group(k, v) for k, v in p.items()}, bt, config)

    terms = jax.tree.map(lambda x: jnp.mean(x, axis=0), jax.vmap(one)(grouped_pred, grouped_batch))
    return terms["objective"], terms
