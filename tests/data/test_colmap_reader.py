"""COLMAP scene folders: read back exactly (model .bin and .txt), checked against pycolmap, bad data named."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pycolmap
import pytest

from vggt_jax.data.readers import colmap
from vggt_jax.data.sources import DataError, FileSceneSource
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import camera_centers, project_points


@pytest.fixture(scope="module")
def views():
    scene = SyntheticScene(seed=9, num_frames=3, height=30, width=40, trajectory="random")
    v = scene.render()
    v["images_u8"] = np.round(v["images"] * 255).astype(np.uint8)
    return v


@pytest.mark.parametrize("binary", [True, False])
def test_scene_folder_round_trip(tmp_path, views, binary):
    colmap.write_colmap_scene(
        tmp_path / "scene", views["images_u8"], views["extrinsics"], views["intrinsics"], views["depths"], binary=binary
    )
    record = colmap.load_colmap_scene(tmp_path / "scene")
    assert record.name == "scene" and len(record.frames) == 3
    source = FileSceneSource([record])
    for i in range(3):
        frame = source.load_frame(0, i)
        np.testing.assert_array_equal(frame["image"], views["images_u8"][i])
        np.testing.assert_array_equal(frame["depth"], views["depths"][i])
        # Quaternion round trip of the rotation: float64 round-off.
        np.testing.assert_allclose(frame["extrinsic"], views["extrinsics"][i], atol=1e-12)
        np.testing.assert_allclose(frame["intrinsic"], views["intrinsics"][i], atol=1e-12)
        assert frame["has_depth"]


def test_bad_data_is_named_and_skipped_or_raised(tmp_path, views, caplog):
    folder = tmp_path / "broken"
    colmap.write_colmap_scene(folder, views["images_u8"], views["extrinsics"], views["intrinsics"], views["depths"])
    (folder / "images" / "frame0001.png").unlink()
    (folder / "stereo" / "depth_maps" / "frame0002.png.geometric.bin").unlink()
    with pytest.raises(DataError, match=r"scene 'broken', frame 'frame0001.png': image file .* missing"):
        colmap.load_colmap_scene(folder)
    with caplog.at_level(logging.WARNING):
        record = colmap.load_colmap_scene(folder, on_error="skip")
    assert [f.name for f in record.frames] == ["frame0000.png"]
    assert "frame 'frame0002.png': depth file" in caplog.text and "frame 'frame0001.png'" in caplog.text
    # Missing at load time (check_files=False) is reported by the source.
    record = colmap.load_colmap_scene(folder, check_files=False)
    with pytest.raises(DataError, match="frame 'frame0001.png'"):
        FileSceneSource([record]).load_frame(0, 1)
    shutil.rmtree(folder / "sparse")
    with pytest.raises(DataError, match="scene 'broken': cannot read the COLMAP model"):
        colmap.load_colmap_scene(folder)


def test_against_pycolmap(tmp_path, views):
    colmap.write_colmap_scene(tmp_path / "s", views["images_u8"], views["extrinsics"], views["intrinsics"])
    rec = pycolmap.Reconstruction(str(tmp_path / "s" / "sparse" / "0"))
    for image in rec.images.values():
        i = int(image.name[5:9])
        np.testing.assert_allclose(image.cam_from_world().matrix(), views["extrinsics"][i], atol=1e-12)
        # pycolmap projects with COLMAP's pixel convention: ours + 0.5.
        point = camera_centers(views["extrinsics"][i]) + views["extrinsics"][i][2, :3] * 3.0
        uv, _ = project_points(point[None], views["extrinsics"][i], views["intrinsics"][i])
        np.testing.assert_allclose(image.project_point(point), uv[0] + 0.5, atol=1e-9)
