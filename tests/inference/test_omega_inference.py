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
        (dict(ba=True, tracker="head"), "--tracker head needs a track head and this checkpoint's model \\(omega_tiny"),
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


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Four frames of a synthetic orbit rendered as PNGs (texture for SIFT), and their true intrinsics as JSON."""
    from PIL import Image

    from vggt_jax.data.synthetic import SyntheticScene

    folder = tmp_path_factory.mktemp("rendered")
    views = SyntheticScene(3, 4, 192, 256, trajectory="orbit", texture_scale=2.0).render()
    (folder / "images").mkdir()
    known = {}
    for k, image in enumerate(views["images"]):
        name = f"frame_{k}.png"
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / "images" / name)
        fx, fy, cx, cy = (float(v) for v in views["intrinsics"][k][[0, 1, 0, 1], [0, 1, 2, 2]])
        known[name] = dict(fx=fx, fy=fy, cx=cx, cy=cy)
    (folder / "intrinsics.json").write_text(json.dumps(known))
    return folder, views["intrinsics"]


def _omega_fov_fixed(fixture_file, tmp_path):
    """The tiny Omega weights with every frame's field of view 1.01 rad (its random FoV can be 0.01 rad)."""
    sd = state_dict(load_table(fixture_file("omega/omega_tiny_weights.json")))
    sd["camera_head.camera_branch.2.weight"][7:9] = 0.0
    sd["camera_head.camera_branch.2.bias"][7:9] = 1.0
    return save_checkpoint(tmp_path / "omega_fov", omega_tiny(), convert_state_dict(sd, omega_tiny()))


def test_ba_with_image_features_and_known_intrinsics(rendered, fixture_file, tmp_path):
    """--ba with an Omega checkpoint (no track head): SIFT tracks, bundle adjustment, the adjusted COLMAP model,
    ba_report.json and the trajectories; --intrinsics fixes every camera to the known one in every export."""
    import pycolmap

    folder, truth = rendered
    ckpt = _omega_fov_fixed(fixture_file, tmp_path)
    opts = InferOptions(
        images=str(folder / "images"),
        out=str(tmp_path / "recon"),
        checkpoint=str(ckpt),
        image_resolution=256,
        ba=True,
        intrinsics=str(folder / "intrinsics.json"),
        exports=("npz", "colmap", "trajectory"),
    )
    out, _ = run(opts)
    report = json.loads((out / "ba_report.json").read_text())
    assert report["tracker"] == "features" and report["points"] > 0
    assert min(report["tracking"]["keypoints_per_frame"]) > 20 and report["tracking"]["tracks"] > 0
    rec = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    assert rec.num_reg_images() == 4
    for image in rec.images.values():
        k = int(image.name.split("_")[1].split(".")[0])
        camera = rec.cameras[image.camera_id]
        assert camera.model.name == "PINHOLE"
        np.testing.assert_allclose(camera.params, truth[k][[0, 1, 0, 1], [0, 1, 2, 2]] + [0, 0, 0.5, 0.5], rtol=1e-12)
    with np.load(out / "predictions.npz") as f:
        np.testing.assert_allclose(f["intrinsic_original"], truth, rtol=1e-6)
        np.testing.assert_allclose(f["ba_intrinsic_original"], truth, rtol=1e-12)
    assert (out / "trajectory_tum.txt").exists()


def test_bad_intrinsics_file_gives_one_error_and_writes_nothing(rendered, omega_ckpt, tmp_path):
    folder, _ = rendered
    bad = tmp_path / "k.json"
    bad.write_text(json.dumps({"frame_0.png": {"fx": 100.0, "fy": 100.0}}))
    opts = InferOptions(
        images=str(folder / "images"), out=str(tmp_path / "recon"), checkpoint=str(omega_ckpt), intrinsics=str(bad)
    )
    with pytest.raises(ValueError, match="no entry for image 'frame_1.png' \\(and 2 more\\)") as err:
        run(opts)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]
