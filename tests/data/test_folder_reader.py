"""The generic folder layout: pose kinds, OpenGL vs OpenCV axes, depth formats and pixel centres, bad data named."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from vggt_jax.data.readers import folder as folder_reader
from vggt_jax.data.sources import DataError, FileSceneSource, check_frame, write_matrix
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import camera_centers, project_points

NAMES = ["frame2", "frame10", "frame1"]  # read back in natural order: frame1, frame2, frame10
ORDER = [2, 0, 1]  # the truth index of each loaded frame


@pytest.fixture(scope="module")
def truth():
    v = SyntheticScene(seed=61, num_frames=3, height=30, width=40, trajectory="orbit").render()
    v["images_u8"] = np.round(v["images"] * 255).astype(np.uint8)
    v["depths"][:, :, :3] = 0.0  # an invalid band
    return v


CASES = [
    dict(pose="camera_to_world", axes="opencv", depth_format="npy", pixel_centers="integer", shared=False),
    dict(pose="camera_to_world", axes="opengl", depth_format="png", pixel_centers="half", shared=True),
    dict(pose="world_to_camera", axes="opencv", depth_format="png", pixel_centers="integer", shared=False),
    dict(pose="world_to_camera", axes="opengl", depth_format="npy", pixel_centers="half", shared=False),
]


def _write(path, truth, case, depth_scale=0.001, names=NAMES):
    settings = dict(pose=case["pose"], axes=case["axes"], pixel_centers=case["pixel_centers"])
    if case["depth_format"] == "png":
        settings["depth_scale"] = depth_scale
    folder_reader.write_folder_scene(
        path,
        truth["images_u8"],
        truth["extrinsics"],
        truth["intrinsics"],
        truth["depths"],
        names=names,
        depth_format=case["depth_format"],
        shared_intrinsics=case["shared"],
        **settings,
    )
    return path


def _camera_coords(pose_file, case, points):
    """World points in the camera frame the written pose file describes (in its own axes)."""
    m = np.loadtxt(pose_file)
    w2c = np.linalg.inv(m) if case["pose"] == "camera_to_world" else m
    return points @ w2c[:3, :3].T + w2c[:3, 3]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['pose']}-{c['axes']}-{c['depth_format']}")
def test_conventions_round_trip(tmp_path, truth, case):
    scale = 0.0005 if case["axes"] == "opengl" else 0.001
    path = _write(tmp_path / "capture", truth, case, depth_scale=scale)
    assert (path / "scene.json").exists() == (case != CASES[0])
    # The written pose means what the convention says: 3 m straight ahead of camera 0, 1 m towards its image bottom.
    ext = truth["extrinsics"][0]
    ahead = camera_centers(ext) + 3.0 * ext[2, :3] + 1.0 * ext[1, :3]
    cam = _camera_coords(path / "poses" / "frame2.txt", case, ahead[None])[0]
    expected = [0.0, -1.0, -3.0] if case["axes"] == "opengl" else [0.0, 1.0, 3.0]  # OpenGL: y up, z backward
    np.testing.assert_allclose(cam, expected, atol=1e-9)
    if case["pixel_centers"] == "half":
        k_file = np.loadtxt(path / ("intrinsics.txt" if case["shared"] else "intrinsics/frame2.txt"))
        np.testing.assert_allclose(k_file[:2, 2], truth["intrinsics"][0][:2, 2] + 0.5)

    (scene,) = folder_reader.load_folders(tmp_path)
    assert scene.name == "capture" and [f.name for f in scene.frames] == ["frame1.png", "frame2.png", "frame10.png"]
    source = FileSceneSource([scene])
    points = truth["world_points"][0][truth["depths"][0] > 0][::5].astype(np.float64)
    for i, t in enumerate(ORDER):
        frame = check_frame(source.load_frame(0, i), scene.name)
        np.testing.assert_array_equal(frame["image"], truth["images_u8"][t])
        if case["depth_format"] == "npy":
            np.testing.assert_array_equal(frame["depth"], truth["depths"][t])
        else:  # half a PNG unit, plus float32 round-off
            np.testing.assert_allclose(frame["depth"], truth["depths"][t], atol=0.5 * scale + 1e-6)
        assert frame["has_depth"] and (frame["depth"][:, :3] == 0).all()
        np.testing.assert_array_equal(frame["depth"] > 0, truth["depths"][t] > 0)
        # "%.17g" text: float64 round-off of the rigid inverse.
        np.testing.assert_allclose(frame["extrinsic"], truth["extrinsics"][t], atol=1e-12)
        np.testing.assert_allclose(frame["intrinsic"], truth["intrinsics"][t], atol=1e-12)
        got, _ = project_points(points, frame["extrinsic"], frame["intrinsic"])
        want, _ = project_points(points, truth["extrinsics"][t], truth["intrinsics"][t])
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_without_depth_and_several_scenes(tmp_path, truth):
    for name in ("b_scene", "a_scene"):
        folder_reader.write_folder_scene(tmp_path / name, truth["images_u8"], truth["extrinsics"], truth["intrinsics"])
    scenes = folder_reader.load_folders(tmp_path)
    assert [s.name for s in scenes] == ["a_scene", "b_scene"]
    frame = check_frame(FileSceneSource(scenes).load_frame(1, 2), "b_scene")
    assert not frame["has_depth"] and frame["depth"].shape == (30, 40) and not frame["depth"].any()
    np.testing.assert_allclose(frame["extrinsic"], truth["extrinsics"][2], atol=1e-12)


def test_bad_data_is_named(tmp_path, truth, caplog):
    path = _write(tmp_path / "cap", truth, CASES[0])
    (path / "poses" / "frame1.txt").write_text("1 0 0\n0 1 0\n0 0 1\n")
    (path / "depths" / "frame10.npy").unlink()
    with pytest.raises(DataError, match=r"scene 'cap', frame 'frame1.png': pose file .* not a 4x4 matrix"):
        folder_reader.load_folder_scene(path)
    with caplog.at_level(logging.WARNING):
        record = folder_reader.load_folder_scene(path, on_error="skip")
    assert [f.name for f in record.frames] == ["frame2.png"]
    assert "frame 'frame10.png': depth file" in caplog.text
    # A pose that is not rigid, missing intrinsics, a missing pose file.
    write_matrix(path / "poses" / "frame1.txt", np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(DataError, match=r"frame 'frame1.png': pose file .* not a rigid transform"):
        folder_reader.load_folder_scene(path)
    write_matrix(path / "poses" / "frame1.txt", np.eye(4))
    (path / "intrinsics" / "frame1.txt").unlink()
    (path / "poses" / "frame2.txt").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        with pytest.raises(DataError, match=r"scene 'cap': no usable frame"):
            folder_reader.load_folder_scene(path, on_error="skip")
    assert "frame 'frame1.png': no intrinsics" in caplog.text and "frame 'frame2.png': pose file" in caplog.text
    # A depth map of another size than its image is reported when the frame is checked.
    path = _write(tmp_path / "cap2", truth, CASES[0])
    np.save(path / "depths" / "frame1.npy", np.ones((20, 20), np.float32))
    source = FileSceneSource([folder_reader.load_folder_scene(path)])
    with pytest.raises(DataError, match=r"scene 'cap2', frame 'frame1.png': depth map is \(20, 20\)"):
        check_frame(source.load_frame(0, 0), "cap2")
    # scene.json values and keys are checked.
    (path / "scene.json").write_text(json.dumps({"axes": "blender"}))
    with pytest.raises(DataError, match=r"scene 'cap2': .* axes must be one of \('opencv', 'opengl'\)"):
        folder_reader.load_folder_scene(path)
    (path / "scene.json").write_text(json.dumps({"pose_kind": "camera_to_world"}))
    with pytest.raises(DataError, match=r"scene 'cap2': .* unknown keys \['pose_kind'\]"):
        folder_reader.load_folder_scene(path)
    assert [s.name for s in folder_reader.load_folders(tmp_path, on_error="skip")] == []
