"""Output activations of the heads (``vggt/heads/head_act.py``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def inverse_log_transform(y: jax.Array) -> jax.Array:
    """``sign(y) * (exp(|y|) - 1)``."""
    return jnp.sign(y) * jnp.expm1(jnp.abs(y))


def _base_act(x: jax.Array, kind: str) -> jax.Array:
    if kind == "linear":
        return x
    if kind == "inv_log":
        return inverse_log_transform(x)
    if kind == "exp":
        return jnp.exp(x)
    if kind == "relu":
        return jax.nn.relu(x)
    raise ValueError(f"unknown activation {kind!r}")


def activate_pose(pred: jax.Array, trans_act: str = "linear", quat_act: str = "linear", fl_act: str = "linear"):
    """``pred: [..., 9]`` = [T(3), quat(4), FoV(2)], each part with its own activation."""
    return jnp.concatenate(
        [_base_act(pred[..., :3], trans_act), _base_act(pred[..., 3:7], quat_act), _base_act(pred[..., 7:], fl_act)],
        axis=-1,
    )


def activate_head(out: jax.Array, activation: str, conf_activation: str) -> tuple[jax.Array, jax.Array]:
    """``out: [..., C]`` channels-last: the first C-1 channels through ``activation``, the last is the confidence."""
    xyz, conf = out[..., :-1], out[..., -1]
    if activation == "norm_exp":
        d = jnp.maximum(jnp.linalg.norm(xyz, axis=-1, keepdims=True), 1e-8)
        pts = xyz / d * jnp.expm1(d)
    elif activation == "norm":
        pts = xyz / jnp.linalg.norm(xyz, axis=-1, keepdims=True)
    elif activation == "xy_inv_log":
        z = inverse_log_transform(xyz[..., 2:3])
        pts = jnp.concatenate([xyz[..., :2] * z, z], axis=-1)
    elif activation == "sigmoid":
        pts = jax.nn.sigmoid(xyz)
    else:
        pts = _base_act(xyz, activation)
    if conf_activation == "expp1":
        conf = 1 + jnp.exp(conf)
    elif conf_activation == "expp0":
        conf = jnp.exp(conf)
    elif conf_activation == "sigmoid":
        conf = jax.nn.sigmoid(conf)
    else:
        raise ValueError(f"unknown conf_activation {conf_activation!r}")
    return pts, conf
