"""Frame-sharded inference on 8 (fake CPU) devices equals single-device inference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import TextHeadConfig, micro, omega_micro, tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.inference.predictor import Predictor
from vggt_jax.inference.sharded import FrameShardedPredictor, frame_mesh, frame_sharded_apply
from vggt_jax.model.random_init import random_params
from vggt_jax.model.vggt import VGGT
from vggt_jax.parity.recipe import load_table, state_dict


@pytest.fixture(scope="module")
def mesh():
    if jax.device_count() < 8:
        pytest.skip("needs 8 devices (tests/conftest.py forces 8 CPU devices before jax is imported)")
    return frame_mesh(jax.devices()[:8])


def assert_outputs_close(out, ref):
    assert set(out) == set(ref)
    for name, value in ref.items():
        ours = np.asarray(out[name])
        assert ours.shape == value.shape, name
        # float64 round-off (another summation order per shard); the tracker amplifies it a little, as in
        # tests/model/test_padding.py.
        atol = 1e-9 if name in ("track", "track_list") else 1e-12
        np.testing.assert_allclose(ours, np.asarray(value), rtol=0, atol=atol, err_msg=name)


def test_tiny_fixture_sharded_equals_single_device(mesh, fixture_file):
    """3 frames on 8 devices: padded to 8 frames, one per device, the padding masked out of every attention."""
    with np.load(fixture_file("tiny_s3_112x154_q8.npz")) as f:
        images, queries = f["images"][None].astype(np.float64), f["query_points"][None].astype(np.float64)
    cfg = tiny().replace(dtype="float64", head_dtype="float64", param_dtype="float64")
    with jax.enable_x64(True):
        params = convert_state_dict(state_dict(load_table(fixture_file("tiny_weights.json"))), cfg)
        model = VGGT(cfg)
        ref = jax.jit(model.apply)(params, images, queries)
        out = frame_sharded_apply(model, mesh)(params, images, queries)
    assert_outputs_close(out, ref)


@pytest.mark.parametrize("kv_exchange", ["gather", "ring"])
def test_frames_stay_sharded_without_padding(mesh, kv_exchange):
    """16 frames, 2 per device: no padding, and every per-frame output is split over the devices; global attention
    gathers the keys and values or passes them round the ring. (The tracker, which the fixture test covers, is left
    out: it halves the compile time.)"""
    cfg = micro().replace(dtype="float64", head_dtype="float64", param_dtype="float64", track_head=None)
    images = np.random.default_rng(0).uniform(size=(1, 16, 3, 56, 56))
    with jax.enable_x64(True):
        model = VGGT(cfg)
        params = random_params(model, images)
        ref = jax.jit(model.apply)(params, images)
        out = frame_sharded_apply(model, mesh, kv_exchange=kv_exchange)(params, jnp.asarray(images))
    assert_outputs_close(out, ref)
    depth = out["depth"]
    assert len(depth.addressable_shards) == 8
    assert {shard.data.shape[1] for shard in depth.addressable_shards} == {2}


def test_omega_sharded_equals_single_device(mesh):
    """VGGT-Omega (register attention, its camera head over every frame's special tokens, the text head): 5 frames
    padded to 8, one per device; the per-frame outputs, the special tokens and the scene's text embedding equal one
    device's."""
    cfg = omega_micro().replace(
        dtype="float64",
        head_dtype="float64",
        param_dtype="float64",
        text_head=TextHeadConfig(dim_in=64, depth=1, num_heads=2),
    )
    images = np.random.default_rng(2).uniform(size=(1, 5, 3, 32, 48))
    with jax.enable_x64(True):
        model = VGGT(cfg)
        params = random_params(model, images)
        ref = jax.jit(model.apply)(params, images)
        out = frame_sharded_apply(model, mesh)(params, jnp.asarray(images))
    assert {"camera_and_register_tokens", "text_alignment_embedding"} <= set(ref)
    assert_outputs_close(out, ref)

    # The predictor on top: same Predictions as the single-device one (float32; 5 frames in the 8-frame bucket).
    cfg32 = omega_micro()
    images32 = images[0].astype(np.float32)
    params32 = random_params(VGGT(cfg32), images32[None])
    ref32 = Predictor(cfg32, params32, compilation_cache=False)(images32)
    pred = FrameShardedPredictor(cfg32, params32, mesh=mesh, compilation_cache=False)(images32)
    np.testing.assert_allclose(pred.depth, ref32.depth, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.extrinsic, ref32.extrinsic, rtol=1e-5, atol=1e-5)


def test_sharded_predictor_equals_predictor(mesh):
    cfg = micro().replace(track_head=None)
    images = np.random.default_rng(1).uniform(size=(5, 3, 42, 56)).astype(np.float32)
    params = random_params(VGGT(cfg), images[None])
    ref = Predictor(cfg, params, compilation_cache=False)(images)
    pred = FrameShardedPredictor(cfg, params, mesh=mesh, compilation_cache=False)(images)
    # float32: 5 frames are padded to the 8-frame bucket by both; the sharded one sums in another order, and the
    # camera head's 4 refinement iterations reach ~1e-6 absolute differences.
    np.testing.assert_allclose(pred.depth, ref.depth, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.world_points, ref.world_points, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pred.pose_enc, ref.pose_enc, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kv_exchange", ["gather", "ring"])
def test_scan_layout_sharded_equals_unrolled_single_device(mesh, kv_exchange):
    """The scan layout of the blocks (vggt_jax.model.layout) under shard_map: global attention inside the scanned
    loop gathers or passes round the keys and values; 5 frames on 8 devices, so padding frames are masked too."""
    from vggt_jax.model.layout import stack_layers, with_scan_layers

    cfg = micro().replace(dtype="float64", head_dtype="float64", param_dtype="float64", track_head=None)
    cfg = with_scan_layers(cfg, False)  # the unrolled reference
    images = np.random.default_rng(2).uniform(size=(1, 5, 3, 28, 42))
    with jax.enable_x64(True):
        model = VGGT(cfg)
        params = random_params(model, images)
        ref = jax.jit(model.apply)(params, images)
        scanned = frame_sharded_apply(VGGT(with_scan_layers(cfg, True)), mesh, kv_exchange=kv_exchange)
        out = scanned(stack_layers(params, cfg), jnp.asarray(images))
    assert_outputs_close(out, ref)


def test_windows_over_a_frame_sharded_predictor(mesh, tmp_path):
    """Windowed inference composes with frame sharding: each window split over the mesh gives the windowed result
    of a single-device predictor (float64, micro model, 10 frames in windows of 6 / overlap 2)."""
    from vggt_jax.reconstruct.windows import WindowOptions, run_windows

    cfg = micro().replace(dtype="float64", head_dtype="float64", param_dtype="float64", track_head=None)
    images = np.random.default_rng(3).uniform(size=(10, 3, 28, 28))
    opts = WindowOptions(window=6, overlap=2, loop_closure=False)
    with jax.enable_x64(True):
        params = random_params(VGGT(cfg), images[None, :2])
        fc2 = params["params"]["camera_head"]["pose_branch"]["fc2"]  # a positive field of view: finite cameras
        fc2["kernel"] = fc2["kernel"].at[:, 7:9].set(0.0)
        fc2["bias"] = fc2["bias"].at[7:9].set(0.25)
        results = [
            run_windows(lambda idx, p=p: p(images[idx]), 10, opts, tmp_path / name).predictions
            for name, p in (
                ("single", Predictor(cfg, params, compilation_cache=False)),
                ("sharded", FrameShardedPredictor(cfg, params, mesh=mesh, compilation_cache=False)),
            )
        ]
    for key in ("extrinsic", "depth", "world_points_from_depth"):
        np.testing.assert_allclose(
            getattr(results[1], key), getattr(results[0], key), rtol=1e-6, atol=1e-6
        )  # stored as float32


def test_infer_shard_frames_in_windows(mesh, tmp_path):
    """``infer.py --shard_frames --window 4``: each window of the example scene split over the 8 devices; the
    frames only window 0 holds equal a single-device forward of that window (float32 round-off)."""
    import json
    from pathlib import Path

    from vggt_jax.convert.checkpoint import save_checkpoint
    from vggt_jax.inference.preprocess import load_and_preprocess_images
    from vggt_jax.jobs.infer import InferOptions, run

    example = Path(__file__).resolve().parents[2] / "examples" / "synthetic_room"
    cfg = micro().replace(track_head=None)
    params = random_params(VGGT(cfg), jax.ShapeDtypeStruct((1, 2, 3, 28, 28), jnp.float32))
    fc2 = params["params"]["camera_head"]["pose_branch"]["fc2"]  # a positive field of view: finite cameras
    fc2["kernel"] = fc2["kernel"].at[:, 7:9].set(0.0)
    fc2["bias"] = fc2["bias"].at[7:9].set(0.25)
    ckpt = save_checkpoint(tmp_path / "micro", cfg, params)
    opts = InferOptions(
        images=str(example),
        out=str(tmp_path / "out"),
        checkpoint=str(ckpt),
        window=4,
        shard_frames=True,
        exports=["npz", "trajectory"],
    )
    out, pred = run(opts)
    report = json.loads((out / "windows.json").read_text())
    assert [(w["first_frame"], w["last_frame"]) for w in report["windows"]] == [(0, 3), (2, 5)]
    images, metas = load_and_preprocess_images(example)
    first = Predictor(cfg, params, compilation_cache=False)(images[:4], metas=metas[:4])
    np.testing.assert_allclose(pred.depth[:2], first.depth[:2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred.extrinsic[:2], first.extrinsic[:2], atol=1e-4)
