"""Parameter layouts of the transformer blocks (``AggregatorConfig.scan_layers``).

Unrolled (the official module tree, what the converter reads): one subtree per block, ``aggregator/frame_blocks_3/
attn/qkv/kernel [C, 3C]``. Scanned: one subtree per stack of blocks with a leading layer axis, ``aggregator/
frame_blocks/attn/qkv/kernel [depth, C, 3C]``. The stacks are the aggregator's frame and global blocks and its DINOv2's
``patch_embed/blocks``. Converting between the two is exact: stacking and indexing, no arithmetic.

The functions take a params tree (``{'aggregator': ...}``) or a variables dict (``{'params': {...}}``) of numpy
arrays, jax arrays or ``jax.ShapeDtypeStruct``s, and return a new tree of the same kind without changing the input.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import VGGTConfig

Path = tuple[str, ...]


def layer_stacks(config: VGGTConfig) -> list[tuple[Path, str, int]]:
    """``(parent path, name, depth)`` of every stack of blocks: unrolled, the blocks are ``parent/{name}_{i}`` for i
    in range(depth); scanned, ``parent/{name}`` with a leading axis of size depth."""
    agg = config.aggregator
    stacks = [(("aggregator",), f"{attn_type}_blocks", agg.depth) for attn_type in dict.fromkeys(agg.aa_order)]
    stacks.append((("aggregator", "patch_embed"), "blocks", agg.patch_embed.depth))
    return stacks


def with_scan_layers(config: VGGTConfig, scan_layers: bool) -> VGGTConfig:
    """``config`` with the given block layout."""
    return config.replace(aggregator=dataclasses.replace(config.aggregator, scan_layers=scan_layers))


def stacked_path(path: Path, config: VGGTConfig) -> tuple[Path, int] | None:
    """Unrolled param path -> (its scanned path, layer), or None for a param outside every stack:
    ``('aggregator', 'frame_blocks_3', 'attn', ...)`` -> ``(('aggregator', 'frame_blocks', 'attn', ...), 3)``."""
    for parent, name, depth in layer_stacks(config):
        n = len(parent)
        if path[:n] == parent and len(path) > n:
            m = re.fullmatch(rf"{re.escape(name)}_(\d+)", path[n])
            if m and int(m.group(1)) < depth:
                return (*parent, name, *path[n + 1 :]), int(m.group(1))
    return None


def stack_layers(params: Mapping[str, Any], config: VGGTConfig) -> dict:
    """Unrolled -> scanned layout. Raises ValueError listing every block that is missing, extra, already stacked or
    shaped unlike the stack's first block."""
    tree, wrap = _unwrap(params)
    problems: list[str] = []
    for parent, name, depth in layer_stacks(config):
        where = "/".join((*parent, name))
        node = _get(tree, parent)
        if node is None:
            problems.append(f"{'/'.join(parent)}: not in the params")
            continue
        names = [f"{name}_{i}" for i in range(depth)]
        extra = sorted(k for k in node if re.fullmatch(rf"{re.escape(name)}_\d+", k) and k not in names)
        missing = [k for k in names if k not in node]
        if name in node:
            problems.append(f"{where}: already stacked (the params are in the scan layout)")
        if missing or extra:
            problems.append(f"{where}_*: {depth} blocks expected; missing {missing}, unexpected {extra}")
        if name in node or missing or extra:
            continue
        layers = [_flatten(node[k]) for k in names]
        mismatched = [k for k, layer in zip(names, layers, strict=True) if _signature(layer) != _signature(layers[0])]
        if mismatched:
            problems.append(f"{where}_*: {mismatched} differ from {names[0]} in their leaves, shapes or dtypes")
            continue
        stacked = _unflatten({key: _stack([layer[key] for layer in layers]) for key in layers[0]})
        rest = {k: v for k, v in node.items() if k not in names}
        tree = _set(tree, parent, {**rest, name: stacked})
    _raise(problems, "stack", config)
    return wrap(tree)


def unstack_layers(params: Mapping[str, Any], config: VGGTConfig) -> dict:
    """Scanned -> unrolled layout (the inverse of ``stack_layers``). Raises ValueError listing every stack that is
    missing, already unrolled or not ``depth`` layers deep."""
    tree, wrap = _unwrap(params)
    problems: list[str] = []
    for parent, name, depth in layer_stacks(config):
        where = "/".join((*parent, name))
        node = _get(tree, parent)
        if node is None:
            problems.append(f"{'/'.join(parent)}: not in the params")
            continue
        unrolled = sorted(k for k in node if re.fullmatch(rf"{re.escape(name)}_\d+", k))
        if unrolled:
            problems.append(f"{where}: unrolled blocks {unrolled} present (the params are in the unrolled layout)")
            continue
        if name not in node:
            problems.append(f"{where}: missing")
            continue
        flat = _flatten(node[name])
        shallow = {"/".join(k): tuple(v.shape) for k, v in flat.items() if not v.shape or v.shape[0] != depth}
        if shallow:
            problems.append(f"{where}: leaves without a leading layer axis of size {depth}: {shallow}")
            continue
        layers = {f"{name}_{i}": _unflatten({k: _index(v, i) for k, v in flat.items()}) for i in range(depth)}
        tree = _set(tree, parent, {**{k: v for k, v in node.items() if k != name}, **layers})
    _raise(problems, "unstack", config)
    return wrap(tree)


def _raise(problems: list[str], verb: str, config: VGGTConfig) -> None:
    if problems:
        raise ValueError(
            f"cannot {verb} the transformer blocks of these params for config {config.name!r} (depth "
            f"{config.aggregator.depth}, DINOv2 depth {config.aggregator.patch_embed.depth}); are they the params of "
            "this config, in the other layout?\n" + "\n".join(f"  {p}" for p in problems)
        )


def _unwrap(params: Mapping[str, Any]):
    if set(params) == {"params"}:
        return dict(params["params"]), lambda tree: {"params": tree}
    return dict(params), lambda tree: tree


def _get(tree: Mapping[str, Any], path: Path) -> Mapping[str, Any] | None:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree if isinstance(tree, Mapping) else None


def _set(tree: Mapping[str, Any], path: Path, value: Any) -> dict:
    """A copy of ``tree`` with ``value`` at ``path``, sharing every untouched subtree."""
    if not path:
        return value
    return {**tree, path[0]: _set(tree[path[0]], path[1:], value)}


def _flatten(tree: Any, prefix: Path = ()) -> dict[Path, Any]:
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    out: dict[Path, Any] = {}
    for k, v in tree.items():
        out.update(_flatten(v, (*prefix, k)))
    return out


def _unflatten(flat: Mapping[Path, Any]) -> dict:
    out: dict = {}
    for path, leaf in flat.items():
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = leaf
    return out


def _signature(flat: Mapping[Path, Any]) -> dict[Path, tuple]:
    return {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in flat.items()}


def _stack(leaves: list[Any]) -> Any:
    if all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves):
        return jax.ShapeDtypeStruct((len(leaves), *leaves[0].shape), leaves[0].dtype)
    if all(isinstance(x, np.ndarray) for x in leaves):
        return np.stack(leaves)
    return jnp.stack(leaves)


def _index(leaf: Any, i: int) -> Any:
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype)
    return leaf[i]
