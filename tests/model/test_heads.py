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
