"""Padding frames and query points (shape buckets) with masks leaves the real outputs unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.model.vggt import VGGT
from vggt_jax.parity.recipe import load_table, state_dict


def test_padded_frames_and_queries_match_unpadded(fixture_file):
    with np.load(fixture_file("tiny_s3_112x154_q8.npz")) as f:
        images, queries = f["images"].astype(np.float64), f["query_points"].astype(np.float64)
    s, n = images.shape[0], queries.shape[0]
    cfg = tiny().replace(dtype="float64", head_dtype="float64", param_dtype="float64")
    with jax.enable_x64(True):
        params = convert_state_dict(state_dict(load_table(fixture_file("tiny_weights.json"))), cfg)
        apply = jax.jit(VGGT(cfg).apply)
        ref = apply(params, jnp.asarray(images), jnp.asarray(queries))
        # Pad with copies of real frames and points (the hardest case: identical content in the padding).
        padded_images = np.concatenate([images, images[1:], images[:1]])
        padded_queries = np.concatenate([queries, queries[:3] + 1.5])
        frame_mask = np.arange(len(padded_images)) < s
        point_mask = np.arange(len(padded_queries)) < n
        out = apply(params, jnp.asarray(padded_images), jnp.asarray(padded_queries), frame_mask[None], point_mask[None])
    for name in ("pose_enc_list", "depth", "depth_conf", "world_points", "world_points_conf"):
        np.testing.assert_allclose(
            np.asarray(out[name])[..., :s, :] if name == "pose_enc_list" else np.asarray(out[name])[:, :s],
            np.asarray(ref[name]),
            rtol=0,
            atol=1e-12,
            err_msg=name,
        )
    np.testing.assert_allclose(np.asarray(out["track_list"])[:, :, :s, :n], np.asarray(ref["track_list"]), atol=1e-9)
    for name in ("vis", "conf"):
        np.testing.assert_allclose(np.asarray(out[name])[:, :s, :n], np.asarray(ref[name]), atol=1e-12, err_msg=name)
