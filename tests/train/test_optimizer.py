"""The optimiser against torch.optim.AdamW, clip_grad_norm_ and fvcore's schedule (float64)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import torch

from vggt_jax.train import optimizer as opt
from vggt_jax.train.config import base_config


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def optim_config(**over):
    c = ml_collections.ConfigDict(base_config().optim.to_dict())
    c.update(over)
    return c


def toy_params(rng):
    return {
        "aggregator": {"camera_token": rng.normal(size=(1, 2, 1, 4)), "blk": {"kernel": rng.normal(size=(4, 6))}},
        "camera_head": {"fc": {"kernel": rng.normal(size=(6, 3)), "bias": rng.normal(size=(3,))}},
        "depth_head": {"conv": {"kernel": rng.normal(size=(3, 3, 2, 2))}},
    }


def fvcore_lr(where, lr=5e-5, start=1e-8, end=1e-8, warm=0.05):
    """default.yaml: LinearParamScheduler(1e-8 -> lr) over 5%, then CosineParamScheduler(lr -> 1e-8), rescaled."""
    if where < warm:
        t = where / warm
        return start + t * (lr - start)
    t = (where - warm) / (1 - warm)
    return end + 0.5 * (lr - end) * (1 + math.cos(math.pi * t))


def test_schedule_matches_fvcore():
    sched = opt.learning_rate_schedule(optim_config(), 1000)
    for step in (0, 10, 49, 50, 51, 300, 999, 1000):
        assert float(sched(step)) == pytest.approx(fvcore_lr(step / 1000), rel=1e-6, abs=1e-15), step


def test_adamw_with_group_clipping_matches_torch():
    """Three steps of our optimiser (per-group clipping to 1.0, AdamW, schedule) equal torch's AdamW after
    GradientClipper-style ``clip_grad_norm_`` per group, with the same learning rates."""
    rng = np.random.default_rng(0)
    params = jax.tree.map(jnp.asarray, toy_params(rng))
    cfg = optim_config(lr=1e-2, warmup_frac=0.3)
    tx, info = opt.make_optimizer(cfg, params, total_steps=4)
    state = tx.init(params)
    names = ["/".join(k) for k in _flat(params)]
    torch_params = {
        n: torch.tensor(np.asarray(v), requires_grad=True) for n, v in zip(names, _leaves(params), strict=True)
    }
    torch_opt = torch.optim.AdamW(torch_params.values(), lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    groups = {
        g: [torch_params[n] for n in names if n.startswith(prefix)]
        for g, prefix in [("aggregator", "aggregator"), ("camera", "camera_head"), ("depth", "depth_head")]
    }
    for step in range(3):
        grads = jax.tree.map(lambda p, s=step: jnp.asarray(rng.normal(size=p.shape) * (3.0 + s)), params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for n, g in zip(names, _leaves(grads), strict=True):
            torch_params[n].grad = torch.tensor(np.asarray(g))
        for group in groups.values():
            torch.nn.utils.clip_grad_norm_(group, max_norm=1.0)
        for pg in torch_opt.param_groups:
            pg["lr"] = float(info["schedule"](step))
        torch_opt.step()
    # 1e-7: optax evaluates the schedule and Adam's bias corrections (0.9 ** count) in float32 even under x64
    # (measured 1.9e-8 of a step of ~1e-2, so <= 1e-9 absolute); everything else agrees to float64 round-off.
    for n, v in zip(names, _leaves(params), strict=True):
        np.testing.assert_allclose(np.asarray(v), torch_params[n].detach().numpy(), rtol=1e-7, atol=5e-9, err_msg=n)


def test_frozen_parameters_get_no_update_and_no_state():
    params = jax.tree.map(jnp.asarray, toy_params(np.random.default_rng(1)))
    tx, info = opt.make_optimizer(optim_config(frozen=("^aggregator/",)), params, total_steps=10)
    state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, state = tx.update(grads, state, params)
    assert all(bool(jnp.all(u == 0)) for u in jax.tree.leaves(updates["aggregator"]))
    assert all(bool(jnp.any(u != 0)) for u in jax.tree.leaves(updates["camera_head"]))
    state_size = sum(x.size for x in jax.tree.leaves(state))
    trainable = sum(x.size for k, v in params.items() if k != "aggregator" for x in jax.tree.leaves(v))
    assert state_size == 2 * trainable + 2  # mu and nu of the heads only, and two step counters
    # freeze() keeps the backward pass from computing frozen gradients at all.
    loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(opt.freeze(p, info["labels"])))  # noqa: E731
    g = jax.grad(loss)(params)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(g["aggregator"]))


def test_configuration_errors_are_caught():
    params = toy_params(np.random.default_rng(2))
    with pytest.raises(ValueError, match="match no parameter"):
        opt.make_optimizer(optim_config(frozen=("^agregator/",)), params, 10)
    with pytest.raises(ValueError, match="no clip group"):
        opt.make_optimizer(optim_config(clip_groups=(("camera", "^camera_head/", 1.0),)), params, 10)


def test_weight_decay_mask():
    params = jax.tree.map(jnp.asarray, toy_params(np.random.default_rng(3)))
    tx, _ = opt.make_optimizer(optim_config(no_weight_decay=(r"/bias$",), lr=1.0, init_lr=1.0, end_lr=1.0), params, 10)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    # Zero gradients: the only update is the decay, -lr * wd * p, except for the excluded biases.
    np.testing.assert_allclose(updates["camera_head"]["fc"]["kernel"], -0.05 * params["camera_head"]["fc"]["kernel"])
    np.testing.assert_array_equal(updates["camera_head"]["fc"]["bias"], 0.0)


def _flat(tree):
    return [tuple(str(k.key) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


def _leaves(tree):
    return jax.tree.leaves(tree)
