"""infer.py's windowed path (long sequences) on the example scene with a micro checkpoint: windows.json, the
memory-mapped frames, exports, and frames only the first window holds equal to that window's own forward."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import micro
from vggt_jax.convert.checkpoint import save_checkpoint
from vggt_jax.inference.predictor import Predictor
from vggt_jax.inference.preprocess import load_and_preprocess_images
from vggt_jax.jobs.infer import InferOptions, run
from vggt_jax.model.random_init import random_params
from vggt_jax.model.vggt import VGGT

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "synthetic_room"


@pytest.fixture(scope="module")
def micro_ckpt(tmp_path_factory):
    """Random micro weights with a positive field of view for every frame (the FoV outputs of the pose branch's
    last layer zeroed, bias 0.25 per iteration), so the cameras are finite."""
    cfg = micro()
    shapes = jax.ShapeDtypeStruct((1, 2, 3, 28, 28), jnp.float32), jax.ShapeDtypeStruct((1, 4, 2), jnp.float32)
    params = random_params(VGGT(cfg), *shapes)
    fc2 = params["params"]["camera_head"]["pose_branch"]["fc2"]
    fc2["kernel"] = fc2["kernel"].at[:, 7:9].set(0.0)
    fc2["bias"] = fc2["bias"].at[7:9].set(0.25)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "micro", cfg, params)


def test_infer_in_windows(tmp_path, micro_ckpt):
    opts = InferOptions(
        images=str(EXAMPLE),
        out=str(tmp_path / "out"),
        checkpoint=str(micro_ckpt),
        window=4,
        overlap=2,
        exports=["npz", "ply", "trajectory", "depth", "colmap"],
    )
    out, pred = run(opts)
    report = json.loads((out / "windows.json").read_text())
    assert [(w["first_frame"], w["last_frame"]) for w in report["windows"]] == [(0, 3), (2, 5)]
    assert report["windows"][1]["points"] >= 64 and 0 < report["windows"][1]["inlier_fraction"] <= 1
    assert report["loops"] == []  # six frames hold no loop (pairs must be two windows apart)
    depth = np.load(out / "frames" / "depth.npy", mmap_mode="r")
    assert depth.shape[0] == 6 and np.isfinite(depth).all()
    assert (out / "points.ply").stat().st_size > 0 and (out / "trajectory_tum.txt").exists()
    with np.load(out / "predictions.npz") as npz:
        assert npz["extrinsic"].shape == (6, 3, 4) and "depth" not in npz.files  # dense arrays live in frames/
    images, metas = load_and_preprocess_images(EXAMPLE)
    # The model input stays memory-mapped in frames/ (loaded one image at a time) and is not copied again.
    np.testing.assert_array_equal(np.load(out / "frames" / "images.npy", mmap_mode="r"), images)
    assert isinstance(pred.images, np.memmap) and Path(pred.images.filename).name == "images.npy"
    stored = ["depth", "depth_conf", "extrinsic", "images", "intrinsic", "world_points", "world_points_conf"]
    stored.append("world_points_from_depth")
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{k}.npy" for k in stored]
    assert len(list((out / "depth").glob("*.png"))) == 6 and len(list((out / "confidence").glob("*.png"))) == 6
    assert (out / "sparse" / "0" / "points3D.bin").stat().st_size > 0
    first = Predictor.from_checkpoint(micro_ckpt, compilation_cache=False)(images[:4], metas=metas[:4])
    np.testing.assert_allclose(depth[:2], first.depth[:2], rtol=1e-6)  # frames only window 0 holds
    np.testing.assert_allclose(pred.extrinsic[:2], first.extrinsic[:2], atol=1e-6)


def test_tracking_across_windows_is_refused(tmp_path, micro_ckpt):
    opts = InferOptions(images=str(EXAMPLE), out=str(tmp_path / "out"), checkpoint=str(micro_ckpt), window=4, track=8)
    with pytest.raises(ValueError, match="do not work across windows"):
        run(opts)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
