"""The scan layout of the transformer blocks (``AggregatorConfig.scan_layers``) computes the unrolled model's function:
the same outputs and gradients, its params an exact restacking of the unrolled ones, and the tiny fixture's golden
outputs through the converter's scan path."""

from __future__ import annotations

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import DINO_VARIANTS, micro, tiny
from vggt_jax.convert import abstract_params, convert_state_dict
from vggt_jax.convert.checkpoint import load_checkpoint, save_checkpoint
from vggt_jax.model.aggregator import Aggregator
from vggt_jax.model.layout import stack_layers, unstack_layers, with_scan_layers
from vggt_jax.model.random_init import random_params
from vggt_jax.model.vggt import VGGT, head_layers
from vggt_jax.parity.compare import check
from vggt_jax.parity.recipe import load_table, state_dict
from vggt_jax.parity.run import fixture_model_config, load_fixture, ours_for, run_model

F64 = dict(dtype="float64", head_dtype="float64", param_dtype="float64")


@pytest.fixture
def deep_micro(monkeypatch):
    """``micro()`` (float32) with 4 aggregator layers, of which the heads read 0, 1 and 3 (layer 2 is never stored),
    and a 3-block DINOv2, so every stack has more than one layer."""
    monkeypatch.setitem(DINO_VARIANTS, "micro3_vit14_reg", dict(embed_dim=32, depth=3, num_heads=2))
    cfg = micro()
    agg = dataclasses.replace(
        cfg.aggregator, depth=4, patch_embed=dataclasses.replace(cfg.aggregator.patch_embed, variant="micro3_vit14_reg")
    )
    cfg = with_scan_layers(cfg.replace(aggregator=agg), False)  # the unrolled layout each test compares against
    assert head_layers(cfg) == (0, 1, 3)
    return cfg


def flat(tree) -> dict:
    return flax.traverse_util.flatten_dict(tree, sep="/")


def assert_trees_equal(a, b):
    a, b = flat(a), flat(b)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k


def test_scan_outputs_equal_unrolled(deep_micro):
    """Every output of VGGT, tracks included, with a padding frame and a padding query."""
    deep_micro = deep_micro.replace(**F64)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(1, 3, 3, 28, 42))
    queries = np.array([[[5.0, 7.0], [20.0, 10.0], [30.0, 21.0]]])
    frame_mask, point_mask = np.array([[True, True, False]]), np.array([[True, True, False]])
    with jax.enable_x64(True):
        params = random_params(VGGT(deep_micro), images, queries)
        scanned = stack_layers(params, deep_micro)
        outs = [
            jax.jit(VGGT(cfg).apply)(p, images, queries, frame_mask, point_mask)
            for cfg, p in ((deep_micro, params), (with_scan_layers(deep_micro, True), scanned))
        ]
    ref, out = outs
    assert set(out) == set(ref) >= {"pose_enc_list", "depth", "world_points", "track_list", "vis", "conf"}
    for name in ref:
        # The same float64 arithmetic, fused differently inside the loop: round-off (measured <= 6e-15); the tracker
        # amplifies it, as in test_padding.
        atol = 1e-9 if name in ("track", "track_list") else 1e-12
        np.testing.assert_allclose(np.asarray(out[name]), np.asarray(ref[name]), rtol=0, atol=atol, err_msg=name)


@pytest.mark.parametrize("keep, remat", [((1,), "none"), ((0, 2), "full"), (None, "dots"), ((), "none")])
def test_scanned_aggregator_keeps_only_the_asked_layers(deep_micro, keep, remat):
    """Layers after the last kept one (a scratch slot), none kept, all kept; with each remat policy."""
    cfg = deep_micro.aggregator
    images = np.random.default_rng(1).uniform(size=(1, 2, 3, 28, 28))
    frame_mask = np.array([[True, False]])
    with jax.enable_x64(True):
        unrolled = Aggregator(cfg, jnp.float64, jnp.float64, remat)
        scanned = Aggregator(dataclasses.replace(cfg, scan_layers=True), jnp.float64, jnp.float64, remat)
        params = random_params(unrolled, images)
        ref, start = jax.jit(unrolled.apply, static_argnums=2)(params, images, keep, frame_mask)
        stacked = {"params": stack_layers({"aggregator": params["params"]}, deep_micro)["aggregator"]}
        out, start_scan = jax.jit(scanned.apply, static_argnums=2)(stacked, images, keep, frame_mask)
    assert int(start_scan) == int(start) == 1 + cfg.num_register_tokens
    assert sorted(out) == sorted(ref) == sorted(range(cfg.depth) if keep is None else keep)
    for layer in ref:
        # float64 round-off, as in test_scan_outputs_equal_unrolled
        np.testing.assert_allclose(np.asarray(out[layer]), np.asarray(ref[layer]), rtol=0, atol=1e-12)


def test_gradients_equal_unrolled(deep_micro):
    cfg = deep_micro.replace(track_head=None, **F64)
    images = np.random.default_rng(2).uniform(size=(1, 2, 3, 28, 28))

    def loss(model, params):
        out = model.apply(params, images)
        return jnp.sum(out["depth"] * out["depth_conf"][..., None]) + jnp.sum(out["pose_enc"] ** 2)

    with jax.enable_x64(True):
        params = random_params(VGGT(cfg), images)
        ref = jax.jit(jax.grad(lambda p: loss(VGGT(cfg), p)))(params)
        scan_cfg = with_scan_layers(cfg, True)
        grads = jax.jit(jax.grad(lambda p: loss(VGGT(scan_cfg), p)))(stack_layers(params, cfg))
        ref, grads = (flat(jax.tree.map(np.asarray, g)) for g in (stack_layers(ref, cfg), grads))
    assert ref.keys() == grads.keys()
    errors = {k: np.max(np.abs(grads[k] - ref[k])) / np.max(np.abs(ref[k])) for k in ref if np.any(ref[k])}
    # float64 round-off relative to each gradient's size (measured 4e-15).
    assert max(errors.values()) < 1e-11, sorted(errors.items(), key=lambda kv: -kv[1])[:5]
    assert all(not np.any(grads[k]) for k in ref if k not in errors)


def test_gradient_keeps_no_per_layer_copy_of_the_buffer(deep_micro):
    """The buffer of kept layers is only updated in the scan, so its backward pass needs no copy of it per layer: no
    residual of the forward scan has the shape [depth, *buffer]."""
    cfg = dataclasses.replace(deep_micro.aggregator, scan_layers=True, depth=6)
    images = jnp.zeros((1, 2, 3, 28, 28))
    keep = (1, 3)
    agg = Aggregator(cfg)
    params = jax.eval_shape(agg.init, jax.random.key(0), images)

    def loss(p):
        return sum(jnp.sum(v**2) for v in agg.apply(p, images, keep)[0].values())

    jaxpr = jax.make_jaxpr(jax.grad(loss))(params)
    scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan" and e.params["length"] == cfg.depth]
    assert len(scans) == 2  # the forward and the backward scan over the aggregator's rounds
    t = 1 + cfg.num_register_tokens + 4  # camera, registers, 2x2 patches
    buffer = (len(keep) + 1, 1, 2, t, 2 * cfg.embed_dim)
    shapes = [tuple(v.aval.shape) for e in scans for v in e.outvars]
    assert buffer in shapes and (cfg.depth, *buffer) not in shapes, shapes


def test_stack_unstack_round_trip_is_exact(deep_micro):
    images = jnp.zeros((1, 2, 3, 28, 28))
    params = random_params(VGGT(deep_micro), images)
    scanned = stack_layers(params, deep_micro)
    # The stacked tree is what the scan model creates; the input tree is untouched.
    abstract = jax.eval_shape(VGGT(with_scan_layers(deep_micro, True)).init, jax.random.key(0), images)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), abstract) == jax.tree.map(lambda x: (x.shape, x.dtype), scanned)
    assert "frame_blocks_2" in params["params"]["aggregator"]
    assert scanned["params"]["aggregator"]["frame_blocks"]["attn"]["qkv"]["kernel"].shape == (4, 32, 96)
    assert scanned["params"]["aggregator"]["patch_embed"]["blocks"]["mlp"]["fc1"]["kernel"].shape == (3, 32, 128)
    np.testing.assert_array_equal(
        scanned["params"]["aggregator"]["global_blocks"]["mlp"]["fc2"]["kernel"][2],
        params["params"]["aggregator"]["global_blocks_2"]["mlp"]["fc2"]["kernel"],
    )
    assert_trees_equal(unstack_layers(scanned, deep_micro), params)
    # Without the {'params': ...} wrapper, on numpy arrays and on abstract arrays.
    numpy_params = jax.tree.map(np.asarray, params["params"])
    assert_trees_equal(unstack_layers(stack_layers(numpy_params, deep_micro), deep_micro), numpy_params)
    abstract_unrolled = jax.eval_shape(lambda: params)
    assert jax.tree.map(lambda x: x.shape, stack_layers(abstract_unrolled, deep_micro)) == jax.tree.map(
        lambda x: x.shape, abstract
    )


def test_stack_unstack_reject_wrong_trees(deep_micro):
    params = random_params(VGGT(deep_micro), jnp.zeros((1, 2, 3, 28, 28)))["params"]
    scanned = stack_layers(params, deep_micro)
    with pytest.raises(ValueError, match="already stacked"):
        stack_layers(scanned, deep_micro)
    with pytest.raises(ValueError, match="unrolled layout"):
        unstack_layers(params, deep_micro)
    agg = dict(params["aggregator"])
    del agg["frame_blocks_2"]
    with pytest.raises(ValueError, match=r"missing \['frame_blocks_2'\]"):
        stack_layers({**params, "aggregator": agg}, deep_micro)
    shallower = deep_micro.replace(aggregator=dataclasses.replace(deep_micro.aggregator, depth=3))
    with pytest.raises(ValueError, match=r"unexpected \['global_blocks_3'\]"):
        stack_layers(params, shallower)
    with pytest.raises(ValueError, match="leading layer axis of size 3"):
        unstack_layers(scanned, shallower)
    agg = dict(params["aggregator"])
    agg["global_blocks_1"] = jax.tree.map(lambda x: x[..., :1], agg["global_blocks_1"])
    with pytest.raises(ValueError, match=r"\['global_blocks_1'\] differ from global_blocks_0"):
        stack_layers({**params, "aggregator": agg}, deep_micro)
    with pytest.raises(ValueError, match="aggregator: not in the params"):
        stack_layers({"camera_head": params["camera_head"]}, deep_micro)


def test_checkpoint_loads_in_either_layout(deep_micro, tmp_path):
    cfg = deep_micro.replace(track_head=None)
    params = random_params(VGGT(cfg), jnp.zeros((1, 2, 3, 28, 28)))
    save_checkpoint(tmp_path / "ckpt", cfg, params)
    scan_cfg, scanned = load_checkpoint(tmp_path / "ckpt", scan_layers=True)
    assert scan_cfg == with_scan_layers(cfg, True)
    assert_trees_equal(scanned, stack_layers(params, cfg))
    assert_trees_equal(load_checkpoint(tmp_path / "ckpt", scan_layers=False)[1], params)
    with pytest.raises(ValueError, match="unrolled block layout"):
        load_checkpoint(tmp_path / "ckpt", shardings=object(), scan_layers=True)


@pytest.fixture(scope="module")
def tiny_state_dict(fixture_file):
    return state_dict(load_table(fixture_file("tiny_weights.json")))


def test_converter_writes_the_scan_layout(tiny_state_dict):
    cfg = with_scan_layers(tiny(), True)
    placed = []
    params = convert_state_dict(tiny_state_dict, cfg, place=lambda path, a: placed.append(path) or jnp.asarray(a))
    assert ("aggregator", "frame_blocks", "attn", "qkv", "kernel") in placed
    assert jax.tree.map(lambda x: (x.shape, x.dtype), params) == jax.tree.map(
        lambda x: (x.shape, x.dtype), abstract_params(cfg)
    )
    unrolled = with_scan_layers(tiny(), False)
    assert_trees_equal(params, stack_layers(convert_state_dict(tiny_state_dict, unrolled), unrolled))


def test_tiny_fixture_float64_through_scan_layout(fixture_file, tiny_state_dict):
    """The golden float64 outputs and aggregator layers of the tiny fixture, as tests/test_parity.py checks the
    unrolled layout, with the same tolerances (float64 round-off)."""
    arrays, _ = load_fixture(fixture_file("tiny_s3_112x154_q8.npz"))
    with jax.enable_x64(True):
        cfg = with_scan_layers(fixture_model_config("tiny", x64=True), True)
        params = convert_state_dict(tiny_state_dict, cfg)
        out, inter = run_model(cfg, params, arrays["images"], arrays["query_points"])
    records = []
    for key in sorted(k for k in arrays if k.endswith("__f64")):
        name = key.removesuffix("__f64")
        ours = ours_for(name, out, inter, arrays["agg_layer_idx"])
        if ours is not None:
            records.append(check(name, ours, arrays[key], x64=True))
    assert {r["output"] for r in records} >= {"agg_tokens", "dino_patchtokens_frame0", "depth", "track", "conf"}
    assert all(r["pass"] for r in records), [r for r in records if not r["pass"]]


def test_omega_fixture_float64_through_scan_layout(fixture_file):
    """VGGT-Omega in the scan layout: its register-attention layers (0 and 2 of the tiny model) pick their global
    block's kind per scan step (``nn.cond``); the golden float64 outputs hold as in the unrolled layout."""
    arrays, _ = load_fixture(fixture_file("omega/omega_tiny_s3_96x144.npz"))
    sd = state_dict(load_table(fixture_file("omega/omega_tiny_weights.json")))
    with jax.enable_x64(True):
        cfg = with_scan_layers(fixture_model_config("omega_tiny", x64=True), True)
        params = convert_state_dict(sd, cfg)
        assert params["params"]["aggregator"]["global_blocks"]["attn"]["qkv"]["kernel"].shape[0] == 4
        out, inter = run_model(cfg, params, arrays["images"], None)
    records = []
    for key in sorted(k for k in arrays if k.endswith("__f64") and "_rope_" not in k):
        ours = ours_for(key.removesuffix("__f64"), out, inter, arrays["agg_layer_idx"])
        if ours is not None:
            records.append(check(key.removesuffix("__f64"), ours, arrays[key], x64=True))
    assert {r["output"] for r in records} >= {"agg_tokens", "dino_patchtokens_frame0", "depth", "pose_enc"}
    assert all(r["pass"] for r in records), [r for r in records if not r["pass"]]
