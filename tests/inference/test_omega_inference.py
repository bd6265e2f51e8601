"""VGGT-Omega through the inference product: an orbax checkpoint that names its family, the Predictor (frame
padding included) against the golden outputs, and infer.py's outputs and one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vggt_jax.config import omega_tiny
from vggt_jax.convert import convert_state_dict
from vggt_jax.convert.checkpoint import load_config, save_checkpoint
from vggt_jax.inference.predictor import Predictor
from vggt_jax.jobs.infer import InferOptions, run
from vggt_jax.parity.compare import check
from vggt_jax.parity.recipe import load_table, state_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "synthetic_room"


@pytest.fixture(scope="module")
def omega_ckpt(tmp_path_factory, fixture_file):
    sd = state_dict(load_table(fixture_file("omega/omega_tiny_weights.json")))
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "omega_tiny", omega_tiny(), convert_state_dict(sd, omega_tiny())
    )


def test_checkpoint_names_its_family_and_predictor_matches_golden(omega_ckpt, fixture_file):
    """Three frames run in the 4-frame bucket (one padding frame, masked out of every cross-frame attention): the
    real frames' outputs are the fixture's, within the float32 bounds."""
    assert load_config(omega_ckpt).family == "vggt_omega"
    predictor = Predictor.from_checkpoint(omega_ckpt, dtype="float32")
    assert predictor.config.name == "omega_tiny" and predictor.config.text_head is not None
    with np.load(fixture_file("omega/omega_tiny_s3_96x144.npz")) as f:
        golden = {k: f[k] for k in f.files}
    pred = predictor(golden["images"])
    assert pred.world_points is None and pred.pose_enc_list.shape == (1, 3, 9)
    ours = {
        "pose_enc": pred.pose_enc[None],
        "depth": pred.depth[None, ..., None],
        "depth_conf": pred.depth_conf[None],
        "camera_and_register_tokens": pred.camera_and_register_tokens[None],
        "text_alignment_embedding": pred.text_alignment_embedding[None],
    }
    for name, value in ours.items():
        record = check(name, value, golden[f"{name}__f64"], x64=False)
        assert record["pass"], record
    # Omega's points come from depth + cameras.
    assert np.isfinite(pred.world_points_from_depth).all()


def test_infer_writes_the_exports(omega_ckpt, tmp_path):
    out, pred = run(
        InferOptions(images=str(EXAMPLE), out=str(tmp_path / "recon"), checkpoint=str(omega_ckpt), image_resolution=64)
    )
    assert pred.images.shape[-2:] == (48, 80)  # balanced at 64 px: about (64/16)^2 = 16 patches, here 3 x 5
    with np.load(out / "predictions.npz") as f:
        assert "world_points" not in f.files
        assert f["camera_and_register_tokens"].shape == (len(pred.images), 17, 256)
        assert f["depth"].shape == (len(pred.images), 48, 80)
    for name in ("points.ply", "sparse", "transforms.json", "trajectory_tum.txt"):
        assert (out / name).exists(), name
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    assert len(frames) == len(pred.images)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(track=16), "VGGT-Omega model of this checkpoint has no track head, which --track/--queries needs"),
        (dict(ba=True), "VGGT-Omega model of this checkpoint has no track head, which --ba"),
        (dict(mode="crop"), "takes --mode balanced or max_size"),
        (dict(point_source="points"), "has no point head; use --points_from depth"),
    ],
)
def test_infer_refuses_in_one_line(omega_ckpt, tmp_path, kwargs, match):
    opts = InferOptions(images=str(EXAMPLE), out=str(tmp_path / "recon"), checkpoint=str(omega_ckpt), **kwargs)
    with pytest.raises(ValueError, match=match) as err:
        run(opts)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "recon").exists() and not list(tmp_path.iterdir())
