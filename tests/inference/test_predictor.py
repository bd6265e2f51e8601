"""The Predictor: same numbers as ``model.apply``, shape buckets without recompiles, checkpoint sources."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax import monitoring

from vggt_jax.config import tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.convert.checkpoint import save_checkpoint
from vggt_jax.inference.predictor import Predictor, resolve_checkpoint
from vggt_jax.model.vggt import VGGT
from vggt_jax.parity.recipe import load_table, state_dict, write_safetensors

_traces: list[str] = []
monitoring.register_event_duration_secs_listener(
    lambda name, secs, **kw: _traces.append(name) if name == "/jax/core/compile/jaxpr_trace_duration" else None
)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, fixture_file):
    params = convert_state_dict(state_dict(load_table(fixture_file("tiny_weights.json"))), tiny())
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tiny(), params), params


@pytest.fixture(scope="module")
def case(fixture_file):
    with np.load(fixture_file("tiny_s3_112x154_q8.npz")) as f:
        return f["images"], f["query_points"]


def test_predictor_equals_model_apply(tiny_ckpt, case):
    path, params = tiny_ckpt
    images, queries = case
    predictor = Predictor.from_checkpoint(path, dtype="float32", compilation_cache=False)
    pred = predictor(images, queries)
    ref = jax.jit(VGGT(tiny()).apply)(params, images, queries)
    # The predictor pads 3 frames to the 4-frame bucket and 8 queries to 16: masked attention makes the padding
    # invisible up to float32 summation-order round-off. The pose encoding's components share one camera-head
    # trunk, so their round-off scales with the largest of them (|pose_enc| up to 5.6 here): measured 4.5e-6 on a
    # 0.12 component on an AVX-512 Xeon (8e-7 of the largest), hence an absolute 1e-5.
    np.testing.assert_allclose(pred.depth, np.asarray(ref["depth"])[0, ..., 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.pose_enc, np.asarray(ref["pose_enc"])[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pred.world_points, np.asarray(ref["world_points"])[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pred.track_list[0], np.asarray(ref["track_list"])[0, 0], atol=1e-3)
    assert pred.track.shape == (3, 8, 2) and pred.vis.shape == (3, 8) and pred.conf.shape == (3, 8)
    np.testing.assert_array_equal(pred.track[0], queries)
    assert pred.extrinsic.shape == (3, 3, 4) and pred.intrinsic.shape == (3, 3, 3)
    # Depth unprojected with the predicted cameras lands in frame 0's camera frame for frame 0.
    k = pred.intrinsic[0]
    z = pred.depth[0, 50, 70]
    expected = np.array([(70 - k[0, 2]) * z / k[0, 0], (50 - k[1, 2]) * z / k[1, 1], z])
    e = pred.extrinsic[0]
    np.testing.assert_allclose(e[:, :3] @ pred.world_points_from_depth[0, 50, 70] + e[:, 3], expected, atol=1e-5)


def test_frame_count_inside_a_bucket_does_not_recompile(tiny_ckpt, case):
    path, _ = tiny_ckpt
    images, queries = case
    predictor = Predictor.from_checkpoint(path, compilation_cache=False)
    predictor(images, queries)  # 3 frames -> bucket 4
    before = len(_traces)
    pred = predictor(np.concatenate([images, images[:1]]), queries[:5])  # 4 frames, 5 queries: same buckets
    assert len(_traces) == before, "a frame count inside a bucket retraced the model"
    assert pred.depth.shape[0] == 4 and pred.track.shape == (4, 5, 2)
    predictor(images[:2], queries)  # 2 frames: a new bucket compiles once
    assert len(_traces) > before


def test_raw_state_dict_is_converted_once_and_cached(tmp_path, fixture_file):
    st = tmp_path / "model.safetensors"
    write_safetensors(load_table(fixture_file("tiny_weights.json")), st)
    first = resolve_checkpoint(st, "tiny", cache_dir=tmp_path / "cache")
    mtime = (first / "config.json").stat().st_mtime_ns
    assert resolve_checkpoint(st, "tiny", cache_dir=tmp_path / "cache") == first
    assert (first / "config.json").stat().st_mtime_ns == mtime


def test_bad_checkpoint_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="not a vggt_jax checkpoint"):
        resolve_checkpoint(tmp_path)
