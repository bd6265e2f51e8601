"""VGGT-Omega layer by layer against the tiny Omega fixture, each part fed the golden input of the layer before, so
a failure points at one place: DINOv3 with its axial RoPE, the aggregator's frame / global / register-attention
blocks, the camera head, the pixel-shuffle dense head and the text-alignment head (end to end: tests/test_parity.py).

Float64 bounds: fed the exact golden input, each part is float64 round-off away (measured ~1e-15 on every array),
apart from the frame blocks' float32 RoPE island, reproduced exactly (shared/fixtures/omega/README.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import omega_tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.model.aggregator import IMAGENET_MEAN, IMAGENET_STD, register_attention
from vggt_jax.model.camera_head import OmegaCameraHead
from vggt_jax.model.dino import DinoVisionTransformer
from vggt_jax.model.dpt_head import DPTHead
from vggt_jax.model.layers import Block
from vggt_jax.model.layout import with_scan_layers
from vggt_jax.model.rope import axial_rope
from vggt_jax.model.text_head import TextAlignmentHead
from vggt_jax.parity.compare import check, metrics
from vggt_jax.parity.recipe import load_table, state_dict

H, W = 96, 144
F64 = dict(nrmse=1e-13, maxrel=1e-12)


@pytest.fixture(scope="module")
def case(fixture_file):
    with np.load(fixture_file("omega/omega_tiny_s3_96x144.npz")) as f:
        arrays = {k: f[k] for k in f.files if k != "meta_json"}
    return arrays, state_dict(load_table(fixture_file("omega/omega_tiny_weights.json")))


@pytest.fixture(scope="module")
def params64(case):
    with jax.enable_x64(True):
        return convert_state_dict(case[1], with_scan_layers(omega_tiny(), False), "float64")["params"]  # per block


def assert_round_off(name, ours, golden):
    m = metrics(ours, golden)
    assert m["nrmse"] < F64["nrmse"] and m["maxrel"] < F64["maxrel"], (name, m)


def test_dinov3_backbone_with_axial_rope_float64(case, params64):
    arrays, _ = case
    with jax.enable_x64(True):
        x = (arrays["images"].astype(np.float64) - IMAGENET_MEAN.reshape(3, 1, 1)) / IMAGENET_STD.reshape(3, 1, 1)
        dino = DinoVisionTransformer(omega_tiny().aggregator.patch_embed, jnp.float64, jnp.float64)
        tokens = dino.apply({"params": params64["aggregator"]["patch_embed"]}, jnp.asarray(x.transpose(0, 2, 3, 1)))
    assert_round_off("dino_patchtokens_frame0", tokens[0], arrays["dino_patchtokens_frame0__f64"])


@pytest.mark.parametrize("layer", [1, 2, 3])  # 2 is a register-attention layer, 1 and 3 global
def test_aggregator_block_pair_float64(case, params64, layer):
    arrays, _ = case
    cfg = omega_tiny().aggregator
    assert layer in cfg.register_attention_layers or layer in (1, 3)
    golden = arrays["agg_tokens__f64"][:, 0]  # [layer, S, T, 2C]
    s, t, c = golden.shape[1], golden.shape[2], cfg.embed_dim
    with jax.enable_x64(True):
        # The aggregator's table: computed in float64, rounded to float32 (upstream's float32 island).
        rope = axial_rope(H // 16, W // 16, c // cfg.num_heads, 100.0, 17, jnp.float64, jnp.float32)
        kw = dict(
            init_values=cfg.init_values, qk_norm=True, mask_k_bias=True, dtype=jnp.float64, param_dtype=jnp.float64
        )
        block = Block(c, cfg.num_heads, **kw)
        frame = block.apply(
            {"params": params64["aggregator"][f"frame_blocks_{layer}"]}, jnp.asarray(golden[layer - 1, ..., c:]), rope
        )
        glob_params = {"params": params64["aggregator"][f"global_blocks_{layer}"]}
        x = frame.reshape(1, s, t, c)
        if layer in cfg.register_attention_layers:
            inter = register_attention(lambda *a: block.apply(glob_params, *a), x, 17)
            # The patch tokens skip a register block: its output halves agree there bit for bit.
            np.testing.assert_array_equal(np.asarray(inter[0, :, 17:]), np.asarray(frame[:, 17:]))
        else:
            inter = block.apply(glob_params, x.reshape(1, s * t, c)).reshape(1, s, t, c)
    assert_round_off("frame block", frame, golden[layer, ..., :c])
    assert_round_off("inter-frame block", inter[0], golden[layer, ..., c:])


def run_heads(params, arrays, dtype, suffix):
    cfg = omega_tiny()
    tokens = {i: jnp.asarray(arrays[f"agg_tokens{suffix}"][i]) for i in range(4)}
    special = tokens[3][:, :, :17]
    out, inter = {}, {}
    (out["pose_enc"]), state = OmegaCameraHead(cfg.camera_head, dtype, dtype).apply(
        {"params": params["camera_head"]}, special, mutable=["intermediates"]
    )
    inter.update({f"camera_{k}": v[0] for k, v in state["intermediates"].items()})
    (depth, conf), state = DPTHead(cfg.depth_head, dtype, dtype).apply(
        {"params": params["depth_head"]}, tokens, (H, W), 17, mutable=["intermediates"]
    )
    out.update(depth=depth, depth_conf=conf)
    inter.update({f"dense_{k}": jnp.transpose(v[0], (0, 3, 1, 2)) for k, v in state["intermediates"].items()})
    (emb, token), state = TextAlignmentHead(cfg.text_head, dtype, dtype).apply(
        {"params": params["text_alignment_head"]}, special, mutable=["intermediates"]
    )
    out.update(text_alignment_embedding=emb, text_alignment_token=token)
    inter.update({f"text_{k}": v[0] for k, v in state["intermediates"].items()})
    return out, inter


GOLDEN_INTERMEDIATES = {
    "camera_trunk_in": "camera_trunk_in",
    "camera_trunk_out": "camera_trunk_out",
    "camera_branch_in": "camera_branch_in",
    "pose_enc_raw": "camera_pose_enc_raw",
    **{f"dense_feat{j}": f"dense_feat{j}" for j in range(4)},
    "dense_fused": "dense_fused",
    "dense_proj_out": "dense_proj_out",
    "dense_proj_conf_out": "dense_proj_conf_out",
    "text_readout_in": "text_readout_in",
    "text_readout_out": "text_readout_out",
    "text_embedding_unnormalised": "text_embedding_unnormalised",
}
OUTPUTS = ("pose_enc", "depth", "depth_conf", "text_alignment_embedding", "text_alignment_token")


def test_heads_float64_round_off(case, params64):
    arrays, _ = case
    with jax.enable_x64(True):
        out, inter = run_heads(params64, arrays, jnp.float64, "__f64")
    for name in OUTPUTS:
        assert_round_off(name, out[name], arrays[f"{name}__f64"])
    for golden, ours in GOLDEN_INTERMEDIATES.items():
        assert_round_off(golden, inter[ours], arrays[f"{golden}__f64"])
    # 3 of the 6 raw FoVs are negative: the 0.01 floor of relu(x) + 0.01 is exercised.
    assert np.sum(np.asarray(out["pose_enc"])[..., 7:] == 0.01) == 3


def test_heads_float32(case):
    arrays, sd = case
    params = convert_state_dict(sd, omega_tiny(), "float32")["params"]
    out, inter = run_heads(params, arrays, jnp.float32, "__f32")
    for name in OUTPUTS:
        record = check(name, out[name], arrays[f"{name}__f64"], x64=False)
        assert record["pass"], record
    for golden, ours in GOLDEN_INTERMEDIATES.items():
        record = check(golden, inter[ours], arrays[f"{golden}__f64"], x64=False)
        assert record["pass"], record
