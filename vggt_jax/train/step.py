"""The jitted train and eval steps: pure functions of (state, batch), with explicit shardings and donation.

State: ``{"params", "opt_state", "step", "rng", "skipped"}`` (``step`` counts batches consumed, ``skipped`` the
non-finite steps that were not applied). Batches are dicts of arrays with the scene axis first (layout in
``vggt_jax.train.losses``; ``images [B, S, H, W, 3]`` in [0, 1]).

Mixed precision: parameters and optimiser state stay float32 (master weights); ``VGGTConfig.dtype="bfloat16"``
runs the aggregator and the track head in bfloat16 (Dense layers cast their float32 kernels per use) while the
camera, depth and point heads and the losses run in float32, as upstream's autocast does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from vggt_jax.model.vggt import VGGT
from vggt_jax.train import optimizer as opt_lib
from vggt_jax.train.losses import multitask_loss
from vggt_jax.train.normalization import normalize_camera_extrinsics_and_points_batch

Batch = Mapping[str, jax.Array]


def normalise_batch(batch: Batch) -> dict[str, jax.Array]:
    """The ground truth in camera 0's frame at unit mean point distance (upstream's ``_process_batch``); padded
    frames are removed from the point masks first so they do not enter the scale."""
    out = dict(batch)
    masks = batch["point_masks"]
    if "frame_mask" in batch:
        masks = masks & batch["frame_mask"][:, :, None, None]
    extrinsics, _, world_points, depths = normalize_camera_extrinsics_and_points_batch(
        batch["extrinsics"], None, batch["world_points"], batch["depths"], masks
    )
    out.update(extrinsics=extrinsics, world_points=world_points, depths=depths, point_masks=masks)
    return out


def forward(model: VGGT, params: Any, batch: Batch, *, logits: bool) -> dict[str, jax.Array]:
    """Run the model on a batch; queries are the ground-truth tracks' frame-0 positions when the batch has tracks
    and the model a track head."""
    images = jnp.moveaxis(batch["images"], -1, 2)  # [B, S, H, W, 3] -> [B, S, 3, H, W]
    queries = batch["tracks"][:, 0] if model.config.track_head is not None and "tracks" in batch else None
    return model.apply(
        {"params": params},
        images,
        queries,
        frame_mask=batch.get("frame_mask"),
        point_mask=batch.get("track_mask") if queries is not None else None,
        apply_sigmoid=not logits,
    )


def make_loss_fn(model: VGGT, loss_cfg: Any, group_size: int = 0, normalize_gt: bool = True) -> Callable:
    """``loss_fn(params, batch) -> (objective, terms)``."""

    def loss_fn(params, batch):
        pred = forward(model, params, batch, logits=True)
        gt = normalise_batch(batch) if normalize_gt else dict(batch)
        return multitask_loss(pred, gt, loss_cfg, group_size)

    return loss_fn


def split_microbatches(batch: Batch, accum_steps: int) -> dict[str, jax.Array]:
    """``[B, ...] -> [accum_steps, B / accum_steps, ...]`` taking every ``accum_steps``-th scene, so each microbatch
    keeps the data sharding of the batch (a contiguous split would put each microbatch on a subset of devices)."""

    def split(x):
        b = x.shape[0]
        if b % accum_steps:
            raise ValueError(f"batch size {b} is not divisible by accum_steps={accum_steps}")
        return jnp.swapaxes(x.reshape(b // accum_steps, accum_steps, *x.shape[1:]), 0, 1)

    return {k: split(v) for k, v in batch.items()}


def make_train_step(
    model: VGGT,
    tx: optax.GradientTransformation,
    opt_info: Mapping[str, Any],
    loss_cfg: Any,
    *,
    accum_steps: int = 1,
    group_size: int = 0,
    normalize_gt: bool = True,
) -> Callable:
    """-> ``train_step(state, batch) -> (state, metrics)`` (not jitted: see ``jit_train_step``).

    With ``accum_steps > 1`` the batch is split into microbatches (each with its own loss, as upstream's chunked
    accumulation) and the mean gradient is applied once. A step whose loss or gradient is not finite is skipped:
    parameters and optimiser state are returned unchanged and ``skipped`` is incremented.
    """
    loss_fn = make_loss_fn(model, loss_cfg, group_size, normalize_gt)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    labels, clip_labels, schedule = opt_info["labels"], opt_info["clip_labels"], opt_info["schedule"]

    def train_step(state, batch):
        params = state["params"]
        trainable = opt_lib.freeze(params, labels)
        if accum_steps == 1:
            (_, terms), grads = grad_fn(trainable, batch)
        else:

            def micro(acc, mb):
                (_, t), g = grad_fn(trainable, mb)
                return jax.tree.map(jnp.add, acc, (g, t)), None

            mbs = split_microbatches(batch, accum_steps)
            zeros = jax.tree.map(jnp.zeros_like, trainable)
            terms0 = jax.eval_shape(lambda: loss_fn(trainable, jax.tree.map(lambda x: x[0], mbs))[1])
            terms0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), terms0)
            (grads, terms), _ = jax.lax.scan(micro, (zeros, terms0), mbs)
            grads = jax.tree.map(lambda g: g / accum_steps, grads)
            terms = jax.tree.map(lambda t: t / accum_steps, terms)

        norms = opt_lib.group_norms(grads, clip_labels)
        grad_norm = jnp.sqrt(sum(n**2 for n in norms.values()))
        finite = jnp.isfinite(terms["objective"]) & jnp.isfinite(grad_norm)
        lr = schedule(opt_lib.optimizer_step_count(state["opt_state"]))
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
        new_state = {
            "params": keep(new_params, params),
            "opt_state": keep(opt_state, state["opt_state"]),
            "step": state["step"] + 1,
            "rng": jax.random.fold_in(state["rng"], state["step"]),
            "skipped": state["skipped"] + (~finite).astype(jnp.int32),
        }
        metrics = {
            **{f"loss/{k}": v.astype(jnp.float32) for k, v in terms.items()},
            "grad_norm": grad_norm,
            **{f"grad_norm/{k}": v for k, v in norms.items()},
            "lr": jnp.asarray(lr, jnp.float32),
            "finite": finite,
        }
        return new_state, metrics

    return train_step


def make_eval_step(model: VGGT, loss_cfg: Any, group_size: int = 0, normalize_gt: bool = True) -> Callable:
    """-> ``eval_step(params, batch) -> {loss terms, and per-scene metric arrays}`` (see ``metrics.py``)."""
    from vggt_jax.train.metrics import batch_metrics

    def eval_step(params, batch):
        pred = forward(model, params, batch, logits=True)
        gt = normalise_batch(batch) if normalize_gt else dict(batch)
        _, terms = multitask_loss(pred, gt, loss_cfg, group_size)
        return {**{f"loss/{k}": v for k, v in terms.items()}, **batch_metrics(pred, gt)}

    return eval_step
