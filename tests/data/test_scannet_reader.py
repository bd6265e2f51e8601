"""ScanNet SensReader exports: both resolutions read back against the rendered truth, -inf poses and bad files named."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from vggt_jax.data.readers import scannet
from vggt_jax.data.sources import DataError, FileSceneSource, check_frame, write_matrix
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import project_points, warp_intrinsics

DEPTH_HW, COLOR_HW = (30, 40), (60, 80)
SIZES = dict(depth_size=DEPTH_HW, color_size=COLOR_HW)
# Frame indices on disk: 1 is renamed 10 (integer order differs from string order); 2 has a -inf pose.
INDICES = (0, 10, 2, 3)


@pytest.fixture(scope="module")
def truth():
    scene = SyntheticScene(seed=31, num_frames=4, height=DEPTH_HW[0], width=DEPTH_HW[1], trajectory="orbit")
    v = scene.render()
    k_depth = v["intrinsics"][0]
    # The colour camera: twice the depth's resolution, the same pinhole (so both renders are exact).
    k_color = warp_intrinsics(k_depth, (2.0, 2.0), (0.0, 0.0))
    colors = [scene.render_view(e, k_color, *COLOR_HW)["image"] for e in v["extrinsics"]]
    depths = v["depths"].copy()
    depths[:, :4, :6] = 0.0  # a no-measurement region
    return dict(
        colors=np.round(np.stack(colors) * 255).astype(np.uint8),
        images=np.round(v["images"] * 255).astype(np.uint8),
        depths=depths,
        extrinsics=v["extrinsics"],
        world_points=v["world_points"],
        valid=v["valid"] & (depths > 0),
        k_depth=k_depth,
        k_color=k_color,
    )


def _write(folder, truth):
    extrinsics = truth["extrinsics"].copy()
    extrinsics[2] = -np.inf  # SensReader's lost-tracking marker
    scannet.write_scannet_scene(
        folder, truth["colors"], truth["depths"], extrinsics, truth["k_color"], truth["k_depth"]
    )
    for sub, ext in (("color", "jpg"), ("depth", "png"), ("pose", "txt")):
        (folder / sub / f"1.{ext}").rename(folder / sub / f"10.{ext}")
    return folder


@pytest.fixture
def scene_dir(tmp_path, truth):
    return _write(tmp_path / "scans" / "scene0000_00", truth)


def test_written_format(scene_dir, truth):
    with Image.open(scene_dir / "depth" / "0.png") as img:
        assert img.mode == "I;16" and img.size == DEPTH_HW[::-1]
        np.testing.assert_array_equal(np.asarray(img), np.round(truth["depths"][0].astype(np.float64) / 0.001))
    assert (scene_dir / "pose" / "2.txt").read_text().split() == ["-inf"] * 16
    # 4x4 camera-to-world: the last column is the camera centre.
    pose = np.loadtxt(scene_dir / "pose" / "0.txt")
    rot, t = truth["extrinsics"][0][:, :3], truth["extrinsics"][0][:, 3]
    np.testing.assert_allclose(pose[:3, 3], -rot.T @ t, atol=1e-6)
    np.testing.assert_allclose(np.loadtxt(scene_dir / "intrinsic" / "intrinsic_depth.txt")[:3, :3], truth["k_depth"])


def _check_geometry(frame, truth, frame_index, intrinsic):
    """Frame 0's ground-truth 3D points land on the same pixels in the loaded camera as in the true one."""
    points = truth["world_points"][0][truth["valid"][0]][::7].astype(np.float64)
    want, _ = project_points(points, truth["extrinsics"][frame_index], intrinsic)
    got, z = project_points(points, frame["extrinsic"], frame["intrinsic"])
    assert (z > 0).all()
    # 6-decimal text poses: ~1e-6 relative error in the camera, far below 1e-3 px at 40-80 px.
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_depth_resolution(scene_dir, truth, caplog):
    with caplog.at_level(logging.WARNING):
        scenes = scannet.load_scannet(scene_dir.parent.parent, on_error="skip", **SIZES)
    assert "scene 'scene0000_00', frame '2': pose file" in caplog.text and "non-finite" in caplog.text
    assert [s.name for s in scenes] == ["scene0000_00"]
    assert [f.name for f in scenes[0].frames] == ["0", "3", "10"]
    source = FileSceneSource(scenes)
    for i, truth_index in enumerate((0, 3, 1)):
        frame = check_frame(source.load_frame(0, i), "scene0000_00")
        assert frame["image"].shape == (*DEPTH_HW, 3) and frame["has_depth"]
        expected = np.asarray(
            Image.fromarray(truth["colors"][truth_index]).resize(DEPTH_HW[::-1], Image.Resampling.BICUBIC)
        )
        np.testing.assert_array_equal(frame["image"], expected)
        # The downscaled colour render matches the render at the depth's resolution up to texture aliasing: a mean
        # of 8-10 levels here, against 18-20 for the same image shifted by one pixel.
        assert np.abs(frame["image"].astype(float) - truth["images"][truth_index]).mean() < 12
        # Millimetre PNG: within half a millimetre; the no-measurement region stays 0.
        np.testing.assert_allclose(frame["depth"], truth["depths"][truth_index], atol=5e-4 + 1e-6)
        assert (frame["depth"][:4, :6] == 0).all() and (frame["depth"] > 0).sum() == (
            truth["depths"][truth_index] > 0
        ).sum()
        np.testing.assert_allclose(frame["extrinsic"], truth["extrinsics"][truth_index], atol=1e-5)
        np.testing.assert_allclose(frame["intrinsic"], truth["k_depth"], atol=1e-6)
        _check_geometry(frame, truth, truth_index, truth["k_depth"])


def test_color_resolution_and_stride(scene_dir, truth):
    record = scannet.load_scannet_scene(scene_dir, resolution="color", on_error="skip", **SIZES)
    source = FileSceneSource([record])
    frame = check_frame(source.load_frame(0, 1), record.name)
    np.testing.assert_array_equal(frame["image"], truth["colors"][3])
    quantised = np.round(truth["depths"][3].astype(np.float64) / 0.001).astype(np.float32) * np.float32(0.001)
    # Nearest-neighbour 2x up: every depth pixel becomes a 2x2 block.
    np.testing.assert_array_equal(frame["depth"], np.repeat(np.repeat(quantised, 2, 0), 2, 1))
    np.testing.assert_allclose(frame["intrinsic"], truth["k_color"], atol=1e-6)
    _check_geometry(frame, truth, 3, truth["k_color"])
    # Every 2nd index of 0, 2, 3, 10 (the -inf frame 2 is not selected).
    assert [f.name for f in scannet.load_scannet_scene(scene_dir, stride=2, **SIZES).frames] == ["0", "3"]


def test_bad_data_is_named(scene_dir, caplog):
    with pytest.raises(DataError, match=r"scene 'scene0000_00', frame '2': pose file .* non-finite"):
        scannet.load_scannet_scene(scene_dir, **SIZES)
    write_matrix(scene_dir / "pose" / "2.txt", np.eye(4)[:3])
    (scene_dir / "pose" / "3.txt").write_text("1 0 0\n0 1 0\n")
    (scene_dir / "depth" / "10.png").unlink()
    with pytest.raises(DataError, match=r"scene 'scene0000_00', frame '2': pose file .* not a 4x4 matrix"):
        scannet.load_scannet_scene(scene_dir, **SIZES)
    with caplog.at_level(logging.WARNING):
        record = scannet.load_scannet_scene(scene_dir, on_error="skip", **SIZES)
    assert [f.name for f in record.frames] == ["0"]
    assert "frame '3': pose file" in caplog.text and "frame '10': depth file" in caplog.text
    # Missing at load time (check_files=False) and a depth map of the wrong size are reported by the source.
    record = scannet.load_scannet_scene(scene_dir, on_error="skip", check_files=False, **SIZES)
    with pytest.raises(DataError, match=r"scene 'scene0000_00', frame '10': depth file .* missing"):
        FileSceneSource([record]).load_frame(0, 1)
    Image.fromarray(np.ones((20, 20), np.uint16)).save(scene_dir / "depth" / "0.png")
    with pytest.raises(DataError, match=r"scene 'scene0000_00', frame '0': depth map is 20x20 but .* 40x30"):
        FileSceneSource([record]).load_frame(0, 0)
    # ScanNet v2's default sizes do not fit this small export: every image is reported.
    with pytest.raises(DataError, match=r"frame '0': image is 80x60 but the layout's images are 1296x968"):
        FileSceneSource([scannet.load_scannet_scene(scene_dir, on_error="skip")]).load_frame(0, 0)
    (scene_dir / "intrinsic" / "intrinsic_depth.txt").write_text("577.5 0 319.5\n")
    with pytest.raises(DataError, match=r"scene 'scene0000_00': depth intrinsic file .* not a 4x4 matrix"):
        scannet.load_scannet(scene_dir.parent, **SIZES)
    assert scannet.load_scannet(scene_dir.parent, on_error="skip", **SIZES) == []
