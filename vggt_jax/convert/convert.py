"""Strict conversion of an official VGGT or VGGT-Omega state dict into our Flax params.

Every source key is used exactly once, every target leaf is filled, and shapes and dtypes are checked against
``jax.eval_shape`` of the model before any tensor is read; all problems are reported in one error. Tensors are
read, transformed and handed to JAX one at a time, so a conversion holds at most one extra copy of one tensor
beyond the params it builds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import VGGTConfig, get_config
from vggt_jax.convert.rules import BUFFER_TRANSFORMS, TRANSFORMED_SHAPE, TRANSFORMS, map_key
from vggt_jax.convert.sources import TensorSource, is_float_dtype, open_source
from vggt_jax.model.layout import stacked_path, with_scan_layers
from vggt_jax.model.rope import axial_periods


class ConversionError(ValueError):
    """Raised with every problem of a checkpoint at once."""


@dataclasses.dataclass
class _Plan:
    source_key: str
    path: tuple[str, ...]
    transform: str


def abstract_params(config: VGGTConfig) -> dict:
    """``{'params': ...}`` of ``jax.ShapeDtypeStruct`` for ``config``: no memory is allocated."""
    from vggt_jax.model.vggt import VGGT

    model = VGGT(config)
    side = config.patch_size * 10
    images = jax.ShapeDtypeStruct((1, 2, 3, side, side), jnp.float32)
    queries = jax.ShapeDtypeStruct((1, 1, 2), jnp.float32) if config.track_head is not None else None
    return jax.eval_shape(lambda i, q: model.init(jax.random.PRNGKey(0), i, q), images, queries)


def detect_config(source: Any) -> VGGTConfig:
    """The official variant a raw state dict holds, from its key names: VGGT-Omega has ``inter_frame_blocks`` (and
    with the text head ``text_alignment_head``); anything else is taken for VGGT-1B."""
    keys = list(open_source(source).keys())
    if any(k.startswith("aggregator.inter_frame_blocks.") for k in keys):
        text = any(k.startswith("text_alignment_head.") for k in keys)
        return get_config("vggt_omega_1b_text" if text else "vggt_omega_1b")
    return get_config("vggt_1b")


def expected_buffer(transform: str, shape: tuple[int, ...], config: VGGTConfig) -> np.ndarray | None:
    """What a persistent buffer of VGGT-Omega must hold for ``config`` (None for a shape it cannot have)."""
    if len(shape) != 1:
        return None
    if transform == "buffer:bias_mask":
        third, rest = divmod(shape[0], 3)
        return None if rest else np.concatenate([np.ones(third), np.zeros(third), np.ones(third)]).astype(np.float32)
    agg = config.aggregator
    # Both RoPEs (DINOv3's and the aggregator's) have base 100 in every released config.
    return axial_periods(4 * shape[0], agg.rope_freq or agg.patch_embed.rope_base)


def _check_buffer(source: TensorSource, key: str, transform: str, config: VGGTConfig) -> str | None:
    """None if the buffer holds what the model computes, else the problem."""
    expected = expected_buffer(transform, source.shape(key), config)
    if expected is None:
        return f"{key}: shape {list(source.shape(key))} is not that of a {transform.split(':')[1]} buffer"
    value = np.asarray(source.load(key), np.float64)
    # periods: torch computes them in float32 on the device that built the model; allow its last-bit rounding.
    if not np.allclose(value, expected, rtol=1e-6, atol=0):
        return (
            f"{key}: {transform.split(':')[1]} buffer {value[:6].tolist()}... differs from {expected[:6].tolist()}..."
        )
    return None


def plan_conversion(source: TensorSource, target: dict, config: VGGTConfig | None = None) -> list[_Plan]:
    """Match source keys to target leaves (VGGT-Omega's buffers: check their values); raise ConversionError listing
    every problem."""
    family = config.family if config is not None else "vggt"
    flat_target = flax.traverse_util.flatten_dict(target["params"])
    plans, unexpected, mismatched, bad_dtype, duplicate, bad_buffer = [], [], [], [], [], []
    claimed: dict[tuple[str, ...], str] = {}
    for key in source.keys():
        path, transform = map_key(key, family)
        if transform in BUFFER_TRANSFORMS:
            problem = _check_buffer(source, key, transform, config)
            if problem:
                bad_buffer.append(problem)
            continue
        if path not in flat_target:
            unexpected.append(key)
            continue
        if path in claimed:
            duplicate.append(f"{key} and {claimed[path]} both map to {'/'.join(path)}")
            continue
        claimed[path] = key
        src_shape = source.shape(key)
        want = tuple(flat_target[path].shape)
        got = TRANSFORMED_SHAPE[transform](src_shape)
        if got != want:
            mismatched.append(f"{key}: shape {list(src_shape)}, expected {_source_shape(want, transform)}")
            continue
        if not is_float_dtype(source.dtype(key)):
            bad_dtype.append(f"{key}: dtype {source.dtype(key)}, expected a float dtype")
            continue
        plans.append(_Plan(key, path, transform))
    missing = ["/".join(p) for p in flat_target if p not in claimed]
    problems = []
    for title, items in (
        ("missing (in the model, not in the checkpoint)", missing),
        ("unexpected (in the checkpoint, not in the model)", unexpected),
        ("wrong shape", mismatched),
        ("wrong dtype", bad_dtype),
        ("duplicate", duplicate),
        ("wrong buffer value", bad_buffer),
    ):
        if items:
            problems.append(f"{len(items)} {title}:\n" + "\n".join(f"  {i}" for i in items))
    if problems:
        raise ConversionError(
            f"the checkpoint does not match the model config {getattr(config, 'name', 'vggt_1b')!r}; is it a "
            f"{family} checkpoint of this variant?\n" + "\n".join(problems)
        )
    return plans


def _source_shape(target_shape: tuple[int, ...], transform: str) -> list[int]:
    """Invert TRANSFORMED_SHAPE for the error message: the PyTorch shape that would have been right."""
    t = target_shape
    if transform == "linear":
        return list(t[::-1])
    if transform == "conv2d":
        return [t[3], t[2], t[0], t[1]]
    if transform == "conv_transpose":
        return [t[2], t[3], t[0], t[1]]
    return list(t)


def convert_state_dict(
    src: Any,
    config: VGGTConfig,
    dtype: str | np.dtype | None = None,
    *,
    place: Callable[[tuple[str, ...], np.ndarray], jax.Array] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Official state dict -> ``{'params': ...}`` for ``VGGT(config)``, in the block layout the config asks for
    (``AggregatorConfig.scan_layers``).

    ``src``: a ``.safetensors`` / ``.pt`` path, a dict of arrays or a TensorSource. ``dtype``: of the params
    (default ``config.param_dtype``). ``place(path, array)`` puts one leaf where it belongs (default
    ``jnp.asarray``; a sharded caller passes ``jax.device_put`` with that leaf's sharding); paths and arrays are
    those of the returned layout, so in the scan layout a stack of blocks is placed as one leaf.
    """
    source = open_source(src)
    # Keys map to the unrolled layout (the official module tree); a scanned stack is assembled from its layers.
    target = abstract_params(with_scan_layers(config, False))
    plans = plan_conversion(source, target, config)
    dtype = jnp.dtype(dtype or config.param_dtype)
    place = place or (lambda path, a: jnp.asarray(a))
    # target path -> its source plans by layer; None: an unstacked leaf, one plan.
    leaves: dict[tuple[str, ...], dict[int | None, _Plan]] = {}
    for plan in plans:
        stacked = stacked_path(plan.path, config) if config.aggregator.scan_layers else None
        path, layer = stacked if stacked is not None else (plan.path, None)
        leaves.setdefault(path, {})[layer] = plan
    load = lambda plan: np.ascontiguousarray(  # noqa: E731
        TRANSFORMS[plan.transform](source.load(plan.source_key)), dtype=dtype
    )
    flat: dict[tuple[str, ...], jax.Array] = {}
    done = 0
    for path, by_layer in leaves.items():
        # One leaf (a whole stack of layers in the scan layout) is in host memory at a time.
        if None in by_layer:
            array = load(by_layer[None])
        else:
            array = np.stack([load(by_layer[layer]) for layer in sorted(by_layer)])
        flat[path] = place(path, array)
        del array
        done += len(by_layer)
        if progress is not None:
            progress(done, len(plans))
    return {"params": flax.traverse_util.unflatten_dict(flat)}


def count_params(params: dict) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
