"""The bfloat16 compute mode: trunk and track head in bfloat16, camera/depth/point heads in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.model.vggt import VGGT
from vggt_jax.parity.compare import metrics
from vggt_jax.parity.recipe import load_table, state_dict


def test_bfloat16_mode_keeps_heads_in_float32(fixture_file):
    with np.load(fixture_file("tiny_s3_112x154_q8.npz")) as f:
        images, queries, golden = f["images"], f["query_points"], {k: f[k] for k in ("depth__f64", "pose_enc__f64")}
    sd = state_dict(load_table(fixture_file("tiny_weights.json")))
    params = convert_state_dict(sd, tiny())
    out = jax.jit(VGGT(tiny().replace(dtype="bfloat16")).apply)(params, jnp.asarray(images), jnp.asarray(queries))
    for name in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert out[name].dtype == jnp.float32, name
    assert out["track"].dtype == jnp.float32  # coordinates stay float32, as under torch autocast
    assert np.isfinite(np.asarray(out["vis"], np.float32)).all()
    # bf16 keeps ~3 significant digits through 4+12 transformer blocks; this is a sanity bound, the measured
    # error is reported in the README.
    for name in ("depth", "pose_enc"):
        m = metrics(out[name], golden[f"{name}__f64"])
        assert np.isfinite(m["nrmse"]) and m["nrmse"] < 0.05, (name, m)
