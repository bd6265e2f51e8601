"""The batch job (python -m vggt_jax.batch): scenes to outputs and an index, bad scenes reported, resume after
kill -9 equal to an uninterrupted run, one scene equal to infer.py, the index read back as a training source."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pycolmap
import pytest

from vggt_jax.jobs.batch import BatchOptions, run_batch
from vggt_jax.jobs.index import read_index

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo_micro"
ROOM = REPO / "examples" / "synthetic_room"
OUTPUTS = ("cameras", "depth", "confidence", "images")


def make_scenes(root: Path, count: int) -> Path:
    """``count`` scenes of 3-6 frames of the example room (different subsets), a scene with an unreadable image and
    one with no image."""
    frames = sorted(ROOM.iterdir())
    for k in range(count):
        scene = root / f"scene_{k:02d}"
        scene.mkdir(parents=True)
        for f in frames[k % 3 : k % 3 + 3 + k % 4]:
            shutil.copy(f, scene / f.name)
    (root / "broken").mkdir()
    (root / "broken" / "frame.png").write_text("not an image")
    (root / "empty").mkdir()
    return root


def options(scenes: Path, out: Path, outputs=OUTPUTS, **kw) -> BatchOptions:
    return BatchOptions(
        scenes=str(scenes), out=str(out), checkpoint=str(DEMO), frames=4, outputs=outputs, quiet=True, **kw
    )


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    scenes = make_scenes(root / "scenes", 4)
    outputs = (*OUTPUTS, "colmap")
    summary = run_batch(options(scenes, root / "out", outputs, scenes_per_device=1), log=lambda _: None)
    return scenes, root / "out", summary


def test_scenes_index_and_failures(job):
    scenes, out, summary = job
    assert (summary.done, summary.failed, summary.skipped) == (4, 2, 0)
    rows = {r["id"]: r for r in read_index(out)}
    assert [r["id"] for r in read_index(out)] == sorted(rows)  # manifest (folder) order
    assert "not a readable image" in rows["broken"]["error"] and "no image files" in rows["empty"]["error"]
    row = rows["scene_03"]  # 6 images sampled to 4, uniformly
    assert row["status"] == "done" and row["frame_indices"] == [0, 2, 3, 5] and len(row["frames"]) == 4
    folder = out / "scenes" / "scene_03"
    names = ["cameras.npz", "depth.npy", "depth_conf.npy", "images", "sparse", "sparse_txt"]
    assert sorted(p.name for p in folder.iterdir()) == names
    assert pycolmap.Reconstruction(str(folder / "sparse" / "0")).num_images() == 4
    depth = np.load(folder / "depth.npy")
    assert depth.shape == (4, *row["image_hw"]) and depth.dtype == np.float32
    cams = np.load(folder / "cameras.npz")
    np.testing.assert_array_equal(cams["intrinsic_original"], np.array(row["intrinsics"]))
    np.testing.assert_array_equal(cams["extrinsic"], np.array(row["extrinsics"]))
    assert not list((out / "scenes").glob(".*"))  # no partial folder left
    # A rerun has nothing to do: every scene is finished (the failed ones with their error).
    again = run_batch(options(scenes, out, (*OUTPUTS, "colmap"), scenes_per_device=1), log=lambda _: None)
    assert (again.done, again.failed, again.skipped) == (0, 0, 6)


def test_index_reads_back_as_a_training_source(job):
    from vggt_jax.data.readers import load_scenes
    from vggt_jax.data.sources import FileSceneSource

    _, out, _ = job
    records = load_scenes("batch", str(out))
    assert [r.name for r in records] == [f"scene_{k:02d}" for k in range(4)]
    source = FileSceneSource(records)
    frame = source.load_frame(3, 1)
    depth = np.load(out / "scenes" / "scene_03" / "depth.npy")
    np.testing.assert_array_equal(frame["depth"], depth[1])
    assert frame["image"].shape == (*depth.shape[1:], 3) and frame["has_depth"]
    cams = np.load(out / "scenes" / "scene_03" / "cameras.npz")
    np.testing.assert_array_equal(frame["intrinsic"], cams["intrinsic"][1])


def test_one_scene_equals_infer(job, tmp_path):
    from vggt_jax.jobs.infer import InferOptions, run

    scenes, out, _ = job
    _, pred = run(
        InferOptions(
            images=str(scenes / "scene_01"), out=str(tmp_path / "infer"), checkpoint=str(DEMO), exports=("npz",)
        )
    )
    folder = out / "scenes" / "scene_01"  # 4 images: no sampling
    cams = np.load(folder / "cameras.npz")
    # float32 round-off: the batch pads nothing here but runs its own program (the batch axis sharded).
    np.testing.assert_allclose(np.load(folder / "depth.npy"), pred.depth, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cams["extrinsic"], pred.extrinsic, atol=1e-5)
    np.testing.assert_allclose(cams["intrinsic_original"], pred.intrinsic_original, rtol=1e-5)
    assert list(cams["image_names"]) == [m.name for m in pred.metas]


def same_outputs(a: Path, b: Path) -> None:
    """Every file under two job outputs equal: arrays bit for bit (npz by content: zip stamps a time), the
    index parts byte for byte."""
    files = sorted(
        p.relative_to(a) for p in a.rglob("*") if p.is_file() and "journal" not in p.name and "summary" not in p.name
    )
    assert files == sorted(
        p.relative_to(b) for p in b.rglob("*") if p.is_file() and "journal" not in p.name and "summary" not in p.name
    )
    for rel in files:
        if rel.suffix == ".npz":
            with np.load(a / rel) as x, np.load(b / rel) as y:
                assert sorted(x.files) == sorted(y.files)
                for key in x.files:
                    np.testing.assert_array_equal(x[key], y[key], err_msg=f"{rel}:{key}")
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batch_command(scenes: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vggt_jax.batch",
        "--scenes",
        str(scenes),
        "--checkpoint",
        str(DEMO),
        "--out",
        str(out),
        "--frames",
        "4",
        "--outputs",
        ",".join(OUTPUTS),
        "--quiet",
        *extra,
    ]


def env(devices: int) -> dict:
    return dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )


@pytest.mark.multiprocess
def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path):
    scenes = make_scenes(tmp_path / "scenes", 10)
    reference = tmp_path / "reference"
    run_batch(options(scenes, reference, scenes_per_device=1, workers=1, prefetch=1), log=lambda _: None)

    out = tmp_path / "out"
    cmd = batch_command(scenes, out, "--scenes_per_device", "1", "--workers", "1", "--prefetch", "1")
    proc = subprocess.Popen(cmd, env=env(8), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / "index" / "journal-00000.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 3:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    written = journal.read_text().count("\n")
    assert 3 <= written < 12, f"the kill did not land mid-run ({written} rows)"
    assert not list((out / "index").glob("part-*"))
    rerun = subprocess.run(cmd, env=env(8), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{12 - written} done, {written} skipped" in rerun.stdout.replace(" (finished earlier)", "")
    same_outputs(reference, out)


@pytest.mark.multiprocess
def test_two_processes_of_four_devices_equal_one_device(tmp_path):
    scenes = make_scenes(tmp_path / "scenes", 6)
    one = subprocess.run(
        batch_command(scenes, tmp_path / "one"), env=env(1), capture_output=True, text=True, timeout=300
    )
    assert one.returncode == 0, one.stderr[-2000:]
    port = free_port()
    procs = [
        subprocess.Popen(
            batch_command(
                scenes,
                tmp_path / "two",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num_processes",
                "2",
                "--process_id",
                str(i),
            ),
            env=env(4),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(x[-2000:] for x in logs)
    assert sorted(p.name for p in (tmp_path / "two" / "index").glob("part-*")) == [
        "part-00000-of-00002.jsonl",
        "part-00001-of-00002.jsonl",
    ]
    rows_one, rows_two = read_index(tmp_path / "one"), read_index(tmp_path / "two")
    assert [r["id"] for r in rows_one] == [r["id"] for r in rows_two]
    for a, b in zip(rows_one, rows_two, strict=True):
        assert a["status"] == b["status"] and a.get("frames") == b.get("frames")
        if a["status"] != "done":
            continue
        # 8 scenes per forward over 4 devices against 1: the same arithmetic per scene up to float32 round-off.
        np.testing.assert_allclose(b["extrinsics"], a["extrinsics"], atol=1e-5)
        for name in ("depth.npy", "depth_conf.npy"):
            np.testing.assert_allclose(
                np.load(tmp_path / "two" / "scenes" / a["id"] / name),
                np.load(tmp_path / "one" / "scenes" / a["id"] / name),
                rtol=1e-5,
                atol=1e-5,
            )
    assert json.loads((tmp_path / "two" / "index" / "summary-00001.json").read_text())["processes"] == 2
