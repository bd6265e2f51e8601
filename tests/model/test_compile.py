"""Ahead-of-time checks on compiled programs: XLA's own count of temporary memory grows linearly in the number of
frames with chunked attention (quadratically with the reference kernel), and the frame-chunked DPT head's does not
grow at all. The compile cost of a new frame count inside a shape bucket (none) is covered by
tests/inference/test_predictor.py::test_frame_count_inside_a_bucket_does_not_recompile."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from vggt_jax.config import micro
from vggt_jax.model.aggregator import Aggregator
from vggt_jax.model.attention import AttentionConfig, attention_scope
from vggt_jax.model.dpt_head import DPTHead

HW = (112, 154)  # 8 x 11 patches + 5 special tokens = 93 tokens per frame


def temp_bytes(fn, *args) -> int:
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def aggregator_temp(implementation: str, frames: int) -> int:
    agg = Aggregator(micro().aggregator)
    params = jax.eval_shape(agg.init, jax.random.key(0), jnp.zeros((1, 2, 3, 28, 28)))
    # Tiles of 124 tokens at both frame counts (744 = 6 x 124, 1488 = 12 x 124), so only the sequence length
    # changes: the tile ``auto`` picks depends on how the length divides (``attention._split``).
    config = AttentionConfig(implementation, q_chunk=93, kv_chunk=93)

    def forward(params, images):
        with attention_scope(config):
            return agg.apply(params, images, keep_layers=(0, 1))

    return temp_bytes(forward, params, jax.ShapeDtypeStruct((1, frames, 3, *HW), jnp.float32))


def test_aggregator_memory_is_linear_in_frames():
    # 8 -> 16 frames: global attention's logits grow 4x with the reference kernel; chunked, only the activations
    # grow (2x, here under a larger constant part: measured 1.7 -> 3.3 MB chunked, 9.1 -> 35.8 MB reference).
    chunked = aggregator_temp("chunked", 16) / aggregator_temp("chunked", 8)
    reference = aggregator_temp("xla", 16) / aggregator_temp("xla", 8)
    assert chunked <= 2.25, chunked  # measured 1.99: linear (the reference's quadratic term gives 4)
    assert reference >= 3.5, reference  # the check can see a quadratic term


@pytest.mark.parametrize("chunk, bound", [(1, (1.0, 1.3)), (None, (3.5, 4.0))])
def test_dpt_head_memory_with_frame_chunks(chunk, bound):
    cfg = micro().depth_head
    head = DPTHead(cfg)
    layers = sorted(set(cfg.intermediate_layer_idx))
    params = jax.eval_shape(
        lambda k: head.init(k, {i: jnp.zeros((1, 1, 93, cfg.dim_in)) for i in layers}, HW, 5), jax.random.key(0)
    )

    def temp(frames):
        tokens = {i: jax.ShapeDtypeStruct((1, frames, 93, cfg.dim_in), jnp.float32) for i in layers}
        return temp_bytes(lambda p, t: head.apply(p, t, HW, 5, chunk), params, tokens)

    # 4 -> 16 frames: a frame at a time keeps one frame's full-resolution activations (measured 3.0 -> 3.3 MB, the
    # growth is the outputs'); all at once they grow with the frames (11 -> 44 MB).
    ratio = temp(16) / temp(4)
    assert bound[0] <= ratio <= bound[1], ratio
