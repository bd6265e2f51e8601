"""The optimiser of the official fine-tuning recipe, in optax.

``training/config/default.yaml``: AdamW (lr 5e-5, weight decay 0.05 on every parameter), a schedule over the whole
run of a linear warm-up from 1e-8 for the first 5% and a cosine decay to 1e-8, gradient clipping to norm 1.0 *per
module group* (aggregator, depth head, camera head, each its own global norm, as ``GradientClipper``), and frozen
modules (the aggregator by default) that get neither gradients nor optimiser state.

Parameters are named by their '/'-joined path (``aggregator/frame_blocks_0/attn/qkv/kernel``); frozen sets, weight
decay exclusions and clip groups are regular expressions searched in that path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

TRAIN, FROZEN = "train", "frozen"
# Upstream freezes the DINOv2 mask token (requires_grad=False) whatever the config says; it is unused in VGGT.
ALWAYS_FROZEN = (r"^aggregator/patch_embed/mask_token$",)


def path_str(path: tuple) -> str:
    """``('aggregator', 'camera_token')`` or a jax key path -> ``'aggregator/camera_token'``."""
    return "/".join(str(next((getattr(k, a) for a in ("key", "name", "idx") if hasattr(k, a)), k)) for k in path)


def _label_tree(params: Any, fn: Callable[[str], Any]) -> Any:
    return jax.tree_util.tree_map_with_path(lambda p, _: fn(path_str(p)), params)


def _search(patterns: Sequence[str], name: str) -> bool:
    return any(re.search(p, name) for p in patterns)


def _check_patterns_used(params: Any, patterns: Sequence[str], what: str) -> None:
    names = [path_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    unused = [p for p in patterns if not any(re.search(p, n) for n in names)]
    if unused:
        raise ValueError(f"{what} pattern(s) {unused} match no parameter (names look like {names[0]!r})")


def trainable_labels(params: Any, frozen: Sequence[str] = ()) -> Any:
    """Tree of ``"train"`` / ``"frozen"``; every pattern must match something (a typo must not train everything)."""
    _check_patterns_used(params, frozen, "frozen")
    patterns = tuple(frozen) + ALWAYS_FROZEN
    return _label_tree(params, lambda n: FROZEN if _search(patterns, n) else TRAIN)


def clip_group_labels(params: Any, groups: Sequence[tuple[str, str]], frozen_labels: Any) -> Any:
    """Tree of clip-group names (the first ``(name, pattern)`` that matches; None for frozen parameters).

    Like upstream's ``GradientClipper.setup_clipping``, a trainable parameter that no group covers is an error."""
    missing = []

    def label(path, frozen):
        name = path_str(path)
        if frozen == FROZEN:
            return None
        for group, pattern in groups:
            if re.search(pattern, name):
                return group
        missing.append(name)
        return None

    labels = jax.tree_util.tree_map_with_path(label, frozen_labels)
    if missing:
        raise ValueError(f"{len(missing)} trainable parameters are in no clip group, e.g. {missing[:3]}")
    return labels


def group_norms(grads: Any, labels: Any) -> dict[str, jax.Array]:
    """Global L2 norm of the gradients of each group (accumulated in at least float32)."""
    sums: dict[str, jax.Array] = {}
    for g, label in zip(jax.tree.leaves(grads), jax.tree.leaves(labels, is_leaf=lambda x: x is None), strict=True):
        if label is None:
            continue
        sums[label] = sums.get(label, 0.0) + jnp.sum(jnp.square(g.astype(jnp.promote_types(g.dtype, jnp.float32))))
    return {k: jnp.sqrt(v) for k, v in sums.items()}


class ClipState(NamedTuple):
    pass


def clip_by_group_norm(labels: Any, max_norms: Mapping[str, float]) -> optax.GradientTransformation:
    """Scale each group's gradients by ``min(1, max_norm / (norm + 1e-6))`` (``torch.nn.utils.clip_grad_norm_``)."""

    def update(updates, state, params=None):
        del params
        norms = group_norms(updates, labels)
        scale = {k: jnp.minimum(1.0, max_norms[k] / (n + 1e-6)) for k, n in norms.items()}
        flat_labels = jax.tree.leaves(labels, is_leaf=lambda x: x is None)
        leaves, treedef = jax.tree.flatten(updates)
        out = [
            u if lbl is None else (u * scale[lbl]).astype(u.dtype) for u, lbl in zip(leaves, flat_labels, strict=True)
        ]
        return jax.tree.unflatten(treedef, out), state

    return optax.GradientTransformation(lambda params: ClipState(), update)


def learning_rate_schedule(cfg: Any, total_steps: int) -> optax.Schedule:
    """Linear warm-up from ``init_lr`` to ``lr`` over ``warmup_frac`` of the run, then cosine to ``end_lr``
    (fvcore's ``CompositeParamScheduler`` of ``default.yaml``, in optimiser steps)."""
    warmup = int(round(cfg.warmup_frac * total_steps))
    return optax.warmup_cosine_decay_schedule(
        init_value=cfg.init_lr,
        peak_value=cfg.lr,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=cfg.end_lr,
    )


def make_optimizer(cfg: Any, params: Any, total_steps: int) -> tuple[optax.GradientTransformation, dict[str, Any]]:
    """-> (optimizer, info). ``cfg``: the ``optim`` config block (lr, init_lr, end_lr, warmup_frac, b1, b2, eps,
    weight_decay, no_weight_decay, frozen, clip_groups = ((name, pattern, max_norm), ...)). ``params`` may be
    abstract (shapes only). ``info`` holds the label trees and the schedule the train step reports from."""
    labels = trainable_labels(params, cfg.frozen)
    groups = [(g[0], g[1]) for g in cfg.clip_groups]
    clip_labels = clip_group_labels(params, groups, labels)
    _check_patterns_used(params, cfg.no_weight_decay, "no_weight_decay")
    wd_mask = _label_tree(params, lambda n: not _search(cfg.no_weight_decay, n))
    schedule = learning_rate_schedule(cfg, total_steps)
    adamw = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay, mask=wd_mask)
    tx = optax.chain(
        # Clipping sees the whole tree (frozen gradients are zero and unlabelled); multi_transform then gives AdamW
        # state to trainable parameters only.
        clip_by_group_norm(clip_labels, {g[0]: float(g[2]) for g in cfg.clip_groups}),
        optax.multi_transform({TRAIN: adamw, FROZEN: optax.set_to_zero()}, labels),
    )
    return tx, {"labels": labels, "clip_labels": clip_labels, "schedule": schedule}


def freeze(params: Any, labels: Any) -> Any:
    """Stop the gradient of frozen parameters, so the backward pass never computes it."""
    return jax.tree.map(lambda p, lbl: jax.lax.stop_gradient(p) if lbl == FROZEN else p, params, labels)


def count(params: Any, labels: Any, which: str = TRAIN) -> int:
    return int(
        sum(x.size for x, lbl in zip(jax.tree.leaves(params), jax.tree.leaves(labels), strict=True) if lbl == which)
    )


def optimizer_step_count(opt_state: Any) -> jax.Array:
    """The number of updates applied (the schedule's step), read from AdamW's state."""
    counts = [x for p, x in jax.tree_util.tree_leaves_with_path(opt_state) if path_str(p).endswith("count")]
    return counts[0] if counts else jnp.zeros((), jnp.int32)
