"""The exported model (python -m vggt_jax.export): run without the model code, equal to the Predictor, from one
symbolic artifact at two frame counts; per-bucket programs; infer.py --exported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from vggt_jax.convert.checkpoint import load_checkpoint
from vggt_jax.export import artifact, inspect
from vggt_jax.export.__main__ import main as export_main
from vggt_jax.export.build import export_model
from vggt_jax.inference.predictor import Predictor

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo_micro"
ROOM = DEMO.parent / "synthetic_room"

# Runs the artifact in a fresh process: jax and numpy, never the model code (nor flax).
RUNNER = """
import sys, numpy as np
from vggt_jax.export import load
model = load(sys.argv[1])
images = np.load(sys.argv[2])
out = {f"{n}/{k}": v for n in (3, 5) for k, v in model(images[:n]).items()}
np.savez(sys.argv[3], **out)
assert not [m for m in sys.modules if m.startswith("vggt_jax.model") or m == "flax"], "model code imported"
print("programs", model.frame_buckets[:3], model.platform)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "demo"
    assert export_main([str(DEMO), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 3, 84, 112), dtype=np.float32)


def test_artifact_runs_without_the_model_code_and_equals_the_predictor(exported, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    run = subprocess.run(
        [sys.executable, "-c", RUNNER, str(exported), str(tmp_path / "images.npy"), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    predictor = Predictor.from_checkpoint(DEMO, compilation_cache=False)
    for n in (3, 5):  # buckets 4 and 8 of one symbolic program
        pred = predictor(images[:n])
        for key, want in (
            ("depth", pred.depth[..., None]),
            ("depth_conf", pred.depth_conf),
            ("pose_enc", pred.pose_enc),
            ("world_points", pred.world_points),
        ):
            value = got[f"{n}/{key}"]
            assert value.shape == want.shape
            # float32 round-off: the exported program tiles its MLP rows by a symbolic count, and pads to a bucket.
            np.testing.assert_allclose(value, want, rtol=1e-5, atol=2e-5)


def test_the_artifact_holds_cuda_and_tpu_programs(exported):
    manifest = json.loads((exported / artifact.MANIFEST).read_text())
    assert set(manifest["programs"]) == {"cpu", "cuda", "tpu"} and manifest["weights"] == "argument"
    assert manifest["dtypes"] == {"cpu": "float32", "cuda": "bfloat16", "tpu": "bfloat16"}
    for platform in ("cuda", "tpu"):
        exp = jax.export.deserialize(bytearray((exported / artifact.program_name(platform, None)).read_bytes()))
        assert exp.platforms == (platform,)
        assert str(exp.in_avals[-2].shape[1]) == "frames"  # the symbolic frame count
        fused = inspect.fused_attention(inspect.custom_calls(exp.mlir_module()))
        # cuDNN takes symbolic lengths; splash builds its mask for static ones, so the tpu program tiles.
        assert fused == ({"cudnn"} if platform == "cuda" else set())
    with pytest.raises(ValueError, match="no program for rocm"):
        artifact.load(exported, "rocm")


def test_frame_buckets_export_static_programs(tmp_path, images):
    config, params = load_checkpoint(DEMO, dtype="float32")
    out = export_model(config, params, tmp_path / "b", platforms=("cpu", "tpu"), frames=(2, 4))
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "cpu.f2.jaxexport",
        "cpu.f4.jaxexport",
        "manifest.json",
        "tpu.f2.jaxexport",
        "tpu.f4.jaxexport",
        "weights.safetensors",
    ]
    tpu = jax.export.deserialize(bytearray((out / "tpu.f4.jaxexport").read_bytes()))
    assert inspect.fused_attention(inspect.custom_calls(tpu.mlir_module())) == {"splash"}
    model = artifact.load(out)
    assert model(images[:3])["depth"].shape == (3, 84, 112, 1)
    with pytest.raises(ValueError, match="largest frame bucket is 4"):
        model(images)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_model(config, params, out, platforms=("cpu",))
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        export_model(config, params, tmp_path / "c", platforms=("cpu",), image_hw=(85, 112))
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".*partial*"))


def test_infer_exported_writes_what_the_checkpoint_writes(exported, tmp_path):
    from vggt_jax.jobs.infer import InferOptions, run

    outs = {}
    for name, source in (
        ("ckpt", dict(checkpoint=str(DEMO))),
        ("exported", dict(checkpoint="", exported=str(exported))),
    ):
        out, _ = run(InferOptions(images=str(ROOM), out=str(tmp_path / name), exports=("npz", "colmap"), **source))
        outs[name] = out
    a, b = np.load(outs["ckpt"] / "predictions.npz"), np.load(outs["exported"] / "predictions.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        if a[key].dtype.kind == "f":
            scale = max(1.0, float(np.abs(a[key]).max()))
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=2e-5 * scale, err_msg=key)
        else:
            np.testing.assert_array_equal(b[key], a[key])
    assert sorted(p.name for p in outs["ckpt"].iterdir()) == sorted(p.name for p in outs["exported"].iterdir())
    with pytest.raises(ValueError, match="no track head"):
        run(InferOptions(images=str(ROOM), out=str(tmp_path / "t"), checkpoint="", exported=str(exported), track=8))
    assert not (tmp_path / "t").exists()
