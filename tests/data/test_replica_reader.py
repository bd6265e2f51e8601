"""Replica (NICE-SLAM layout): traj.txt poses, 16-bit depth at 1/6553.5 m, camera from cam_params.json or defaults."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from vggt_jax.data.readers import replica
from vggt_jax.data.sources import DataError, FileSceneSource, check_frame
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import camera_centers, project_points

SCALE = 6553.5  # NICE-SLAM's png_depth_scale: 65535 = 10 m


@pytest.fixture(scope="module")
def truth():
    v = SyntheticScene(seed=50, num_frames=3, height=30, width=40, trajectory="dolly").render()
    v["images_u8"] = np.round(v["images"] * 255).astype(np.uint8)
    v["depths"][:, 10:14, 20:30] = 0.0  # a hole in the render
    assert v["depths"].max() < 10.0  # the format's range
    return v


@pytest.fixture
def scene_dir(tmp_path, truth):
    folder = tmp_path / "Replica" / "room0"
    replica.write_replica_scene(
        folder, truth["images_u8"], truth["depths"], truth["extrinsics"], truth["intrinsics"][0]
    )
    return folder


def test_written_format(scene_dir, truth):
    lines = (scene_dir / "traj.txt").read_text().splitlines()
    assert len(lines) == 3 and all(len(line.split()) == 16 for line in lines)
    cam_to_world = np.array(lines[1].split(), float).reshape(4, 4)
    np.testing.assert_allclose(cam_to_world[:3, 3], camera_centers(truth["extrinsics"][1]), atol=1e-12)
    # OpenCV axes: the camera's third column is its viewing direction (the third row of the world-to-camera R).
    np.testing.assert_allclose(cam_to_world[:3, 2], truth["extrinsics"][1][2, :3], atol=1e-12)
    with Image.open(scene_dir / "results" / "depth000001.png") as img:
        assert img.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(img), np.round(truth["depths"][1].astype(np.float64) * SCALE))


def test_round_trip(scene_dir, truth):
    (scene,) = replica.load_replica(scene_dir.parent)
    assert scene.name == "room0" and [f.name for f in scene.frames] == [f"frame{i:06d}.jpg" for i in range(3)]
    source = FileSceneSource([scene])
    points = truth["world_points"][0][truth["depths"][0] > 0][::5].astype(np.float64)
    for i in range(3):
        frame = check_frame(source.load_frame(0, i), scene.name)
        np.testing.assert_array_equal(frame["image"], truth["images_u8"][i])
        # Quantised to 1 / 6553.5 m: within half a step (plus float32 round-off); the hole stays 0.
        np.testing.assert_allclose(frame["depth"], truth["depths"][i], atol=0.5 / SCALE + 1e-6)
        assert (frame["depth"][10:14, 20:30] == 0).all() and frame["has_depth"]
        # %.18e text: the pose survives to float64 round-off of the rigid inverse.
        np.testing.assert_allclose(frame["extrinsic"], truth["extrinsics"][i], atol=1e-12)
        np.testing.assert_allclose(frame["intrinsic"], truth["intrinsics"][i], atol=1e-12)
        got, _ = project_points(points, frame["extrinsic"], frame["intrinsic"])
        want, _ = project_points(points, truth["extrinsics"][i], truth["intrinsics"][i])
        np.testing.assert_allclose(got, want, atol=1e-9)
    assert [f.name for f in replica.load_replica_scene(scene_dir, stride=2).frames] == [
        "frame000000.jpg",
        "frame000002.jpg",
    ]


def test_camera_sources(scene_dir, truth):
    # cam_params.json next to the scenes (where NICE-SLAM's download has it) is found too.
    shutil.move(scene_dir / "cam_params.json", scene_dir.parent / "cam_params.json")
    np.testing.assert_allclose(replica.load_replica_scene(scene_dir).frames[0].intrinsic, truth["intrinsics"][0])
    # An argument wins over the file.
    record = replica.load_replica_scene(scene_dir, fx=50.0, png_depth_scale=1000.0)
    assert record.frames[0].intrinsic[0, 0] == 50.0 and record.frames[0].depth_scale == 1e-3
    assert record.frames[0].intrinsic[1, 1] == truth["intrinsics"][0][1, 1]
    # Without a file: NICE-SLAM's Replica camera, which these 40x30 renders do not fit.
    (scene_dir.parent / "cam_params.json").unlink()
    record = replica.load_replica_scene(scene_dir)
    np.testing.assert_array_equal(record.frames[0].intrinsic, [[600, 0, 599.5], [0, 600, 339.5], [0, 0, 1]])
    assert record.frames[0].depth_scale == 1 / SCALE
    with pytest.raises(DataError, match=r"scene 'room0', frame 'frame000000.jpg': image is 40x30 but .* 1200x680"):
        FileSceneSource([record]).load_frame(0, 0)


def test_bad_data_is_named(scene_dir, truth, caplog):
    lines = (scene_dir / "traj.txt").read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[:15])
    scaled = np.array(lines[2].split(), float).reshape(4, 4)
    scaled[:3, :3] *= 2.0
    lines[2] = " ".join(str(x) for x in scaled.reshape(-1))
    (scene_dir / "traj.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"scene 'room0', frame 'frame000001.jpg': traj.txt line 2 .* 15 numbers"):
        replica.load_replica(scene_dir)
    with caplog.at_level(logging.WARNING):
        (record,) = replica.load_replica(scene_dir, on_error="skip")
    assert [f.name for f in record.frames] == ["frame000000.jpg"]
    assert "frame 'frame000002.jpg': traj.txt line 3 is not a rigid 4x4 pose" in caplog.text
    (scene_dir / "results" / "depth000000.png").unlink()
    with pytest.raises(DataError, match=r"scene 'room0', frame 'frame000000.jpg': depth file .* missing"):
        replica.load_replica(scene_dir)
    with pytest.raises(DataError, match=r"scene 'room0': no usable frame"):
        replica.load_replica_scene(scene_dir, on_error="skip")
    assert replica.load_replica(scene_dir.parent, on_error="skip") == []
    # A depth map of the wrong size is reported when loaded.
    Image.fromarray(np.ones((30, 30), np.uint16)).save(scene_dir / "results" / "depth000000.png")
    (record,) = replica.load_replica(scene_dir, on_error="skip")
    with pytest.raises(
        DataError, match=r"frame 'frame000000.jpg': depth map is 30x30 but the layout's depth maps are 40x30"
    ):
        FileSceneSource([record]).load_frame(0, 0)
