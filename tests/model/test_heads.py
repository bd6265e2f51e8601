"""Camera and DPT heads against the tiny fixture, fed the golden aggregator layers, so a failure points at the
head and not at the trunk."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.model.camera_head import CameraHead
from vggt_jax.model.dpt_head import DPTHead
from vggt_jax.parity.compare import check, metrics
from vggt_jax.parity.recipe import load_table, state_dict

NAMES = ("pose_enc_list", "depth", "depth_conf", "world_points", "world_points_conf")


@pytest.fixture(scope="module")
def case(fixture_file):
    with np.load(fixture_file("tiny_s3_112x154_q8.npz")) as f:
        arrays = {k: f[k] for k in f.files if k.startswith(("agg_tokens", *NAMES))}
    sd = state_dict(load_table(fixture_file("tiny_weights.json")))
    return arrays, {k: v for k, v in sd.items() if not k.startswith("track_head.")}


def run_heads(sd, agg, dtype):
    cfg = tiny().replace(track_head=None)
    params = convert_state_dict(sd, cfg, dtype)["params"]
    tokens = {i: jnp.asarray(agg[i]) for i in range(4)}
    out = {
        "pose_enc_list": CameraHead(cfg.camera_head, dtype, dtype).apply({"params": params["camera_head"]}, tokens[3])
    }
    for key, head_cfg, names in (
        ("depth_head", cfg.depth_head, ("depth", "depth_conf")),
        ("point_head", cfg.point_head, ("world_points", "world_points_conf")),
    ):
        head = DPTHead(head_cfg, dtype, dtype)
        out.update(zip(names, head.apply({"params": params[key]}, tokens, (112, 154), 5), strict=True))
    return out


def test_heads_float64_round_off(case):
    arrays, sd = case
    with jax.enable_x64(True):
        out = run_heads(sd, arrays["agg_tokens__f64"], jnp.float64)
    for name in NAMES:
        m = metrics(out[name], arrays[f"{name}__f64"])
        # Fed the exact golden tokens, the heads are float64 round-off away (measured ~1e-15).
        assert m["nrmse"] < 1e-13 and m["maxrel"] < 1e-12, (name, m)


def test_heads_float32(case):
    arrays, sd = case
    out = run_heads(sd, arrays["agg_tokens__f32"], jnp.float32)
    for name in NAMES:
        record = check(name, out[name], arrays[f"{name}__f64"], x64=False)
        assert record["pass"], record


@pytest.mark.parametrize("remat", ["none", "full"])
def test_dpt_frame_chunks_stay_on_their_device(remat):
    """Under a training mesh the head's loop over chunks of frames runs over each device's own frames: the tokens
    are not gathered (a loop over chunks of the whole batch gathered every device's tokens onto each), and the
    outputs and gradients equal one pass over all frames on one device."""
    from vggt_jax.config import micro
    from vggt_jax.train import sharding as sh

    head_cfg = micro().depth_head
    b, s, t = 4, 3, 5 + 4 * 5
    rng = np.random.default_rng(0)
    tokens = {i: rng.standard_normal((b, s, t, head_cfg.dim_in)).astype(np.float32) for i in range(4)}
    params = DPTHead(head_cfg).init(jax.random.key(0), tokens, (56, 70), 5)

    def loss(params, tokens, chunk, remat):
        depth, conf = DPTHead(head_cfg, remat=remat).apply(params, tokens, (56, 70), 5, chunk)
        return jnp.sum(jnp.sin(depth)) + jnp.sum(conf)

    step = jax.value_and_grad(loss, argnums=(0, 1))
    ref = jax.jit(step, static_argnums=(2, 3))(params, tokens, None, "none")
    mesh = sh.make_mesh(2, 2, 2)
    with jax.set_mesh(mesh), sh.logical_axis_rules():
        sharded = {i: jax.device_put(x, sh.batch_sharding(mesh, 4)) for i, x in tokens.items()}
        compiled = jax.jit(step, static_argnums=(2, 3)).lower(params, sharded, 1, remat).compile()
        out = compiled(params, sharded)
    assert "all-gather" not in compiled.as_text()
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-5)  # a float32 sum over devices in another order
    for a, r in zip(jax.tree.leaves(out[1]), jax.tree.leaves(ref[1]), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5 * np.abs(r).max())
