"""Aggregator layers against the tiny fixture: each frame/global block pair with RoPE and qk-norm, fed the
golden previous layer, so a failure points at one block; and the ImageNet normalisation constants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.model.layers import Block
from vggt_jax.model.layout import with_scan_layers
from vggt_jax.model.rope import Rope, rope_tables, token_positions
from vggt_jax.parity.compare import metrics
from vggt_jax.parity.recipe import load_table, state_dict


@pytest.fixture(scope="module")
def tiny_case(fixture_file):
    with np.load(fixture_file("tiny_s3_112x154_q8.npz")) as f:
        case = {k: f[k] for k in ("images", "agg_tokens__f64", "agg_tokens__f32", "agg_layer_idx")}
    sd = state_dict(load_table(fixture_file("tiny_weights.json")))
    return case, {k: v for k, v in sd.items() if not k.startswith("track_head.")}


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_block_pair_with_rope_float64(tiny_case, layer):
    case, sd = tiny_case
    cfg = tiny().aggregator
    assert list(case["agg_layer_idx"]) == [0, 1, 2, 3]  # the tiny fixture stores every aggregator layer
    with jax.enable_x64(True):
        unrolled = with_scan_layers(tiny().replace(track_head=None), False)  # one block at a time
        params = convert_state_dict(sd, unrolled, "float64")["params"]["aggregator"]
        golden = case["agg_tokens__f64"][:, 0]  # [layer, S, T, 2C]
        s, t, c = golden.shape[1], golden.shape[2], cfg.embed_dim
        x = jnp.asarray(golden[layer - 1, ..., c:])  # the global block's output feeds the next frame block
        positions = token_positions(112 // 14, 154 // 14, 5)
        rope = Rope(*rope_tables(positions, c // cfg.num_heads, cfg.rope_freq, jnp.float64))
        global_rope = rope.tile(s)
        block = Block(
            c, cfg.num_heads, init_values=cfg.init_values, qk_norm=True, dtype=jnp.float64, param_dtype=jnp.float64
        )
        frame = block.apply({"params": params[f"frame_blocks_{layer}"]}, x, rope)
        glob = block.apply({"params": params[f"global_blocks_{layer}"]}, frame.reshape(1, s * t, c), global_rope)
        # Both are one block of float64 arithmetic away from the golden input: round-off only.
        for ours, gold in ((frame, golden[layer, ..., :c]), (glob.reshape(s, t, c), golden[layer, ..., c:])):
            m = metrics(ours, gold)
            assert m["nrmse"] < 1e-13 and m["maxrel"] < 1e-12, m
