"""COLMAP: model .bin/.txt round trips, scene folders read back exactly, bad data named."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from vggt_jax.data import _geometry as geo
from vggt_jax.data.readers import colmap
from vggt_jax.data.sources import DataError, FileSceneSource
from vggt_jax.data.synthetic import SyntheticScene


@pytest.fixture(scope="module")
def views():
    scene = SyntheticScene(seed=9, num_frames=3, height=30, width=40, trajectory="random")
    v = scene.render()
    v["images_u8"] = np.round(v["images"] * 255).astype(np.uint8)
    return v


def _model_with_tracks():
    rng = np.random.default_rng(0)
    cameras = {
        1: colmap.Camera(1, "PINHOLE", 40, 30, np.array([50.0, 51.0, 20.0, 15.5])),
        2: colmap.Camera(2, "SIMPLE_RADIAL", 640, 480, np.array([500.0, 320.0, 240.0, 0.01])),
    }
    images = {}
    for i in (1, 2):
        q = rng.normal(size=4)
        images[i] = colmap.ImageEntry(
            i,
            q / np.linalg.norm(q),
            rng.normal(size=3),
            i,
            f"sub dir/img{i}.png",
            rng.uniform(0, 40, (3, 2)),
            np.array([7, -1, 8]),
        )
    points = {
        7: colmap.Point3D(
            7, rng.normal(size=3), np.array([1, 2, 3], np.uint8), 0.5, np.array([1, 2]), np.array([0, 2])
        ),
        8: colmap.Point3D(8, rng.normal(size=3), np.array([9, 8, 7], np.uint8), 1.25, np.array([1]), np.array([2])),
    }
    return cameras, images, points


@pytest.mark.parametrize("binary", [True, False])
def test_model_round_trip(tmp_path, binary):
    cameras, images, points = _model_with_tracks()
    colmap.write_model(tmp_path, cameras, images, points, binary=binary)
    cams2, ims2, pts2 = colmap.read_model(tmp_path)
    assert cams2.keys() == cameras.keys() and ims2.keys() == images.keys() and pts2.keys() == points.keys()
    for k, c in cameras.items():
        assert (cams2[k].model, cams2[k].width, cams2[k].height) == (c.model, c.width, c.height)
        np.testing.assert_array_equal(cams2[k].params, c.params)
    for k, im in images.items():
        assert ims2[k].name == im.name and ims2[k].camera_id == im.camera_id
        for field in ("qvec", "tvec", "xys", "point3d_ids"):
            np.testing.assert_array_equal(getattr(ims2[k], field), getattr(im, field))
    for k, p in points.items():
        for field in ("xyz", "rgb", "image_ids", "point2d_idxs"):
            np.testing.assert_array_equal(getattr(pts2[k], field), getattr(p, field))
        assert pts2[k].error == p.error


def test_dense_array_round_trip(tmp_path):
    depth = np.random.default_rng(0).uniform(0, 5, (7, 11)).astype(np.float32)
    colmap.write_array(tmp_path / "d.bin", depth)
    np.testing.assert_array_equal(colmap.read_array(tmp_path / "d.bin"), depth)
    # Column-major layout: the first stored values run down the first image column... of the transposed array,
    # i.e. along the first image row, as COLMAP's own read_array expects.
    raw = np.fromfile(tmp_path / "d.bin", dtype="<f4", offset=len(b"11&7&1&"))
    np.testing.assert_array_equal(raw[:11], depth[0])


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


def test_pixel_convention_shift(tmp_path):
    """COLMAP's principal point is 0.5 px larger than ours (its top-left pixel centre is (0.5, 0.5))."""
    cam = colmap.Camera(1, "SIMPLE_PINHOLE", 40, 30, np.array([50.0, 20.0, 15.0]))
    np.testing.assert_array_equal(colmap.camera_intrinsic(cam)[:2, 2], [19.5, 14.5])
    with pytest.raises(ValueError, match="undistort"):
        colmap.camera_intrinsic(colmap.Camera(1, "OPENCV", 40, 30, np.array([50, 50, 20, 15, 0.1, 0, 0, 0.0])))
    k = colmap.camera_intrinsic(colmap.Camera(1, "OPENCV", 40, 30, np.array([50, 51, 20, 15, 0, 0, 0, 0.0])))
    np.testing.assert_array_equal(np.diag(k), [50, 51, 1])


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
    assert "frame 'frame0002.png': depth map" in caplog.text and "frame 'frame0001.png'" in caplog.text
    # Missing at load time (check_files=False) is reported by the source.
    record = colmap.load_colmap_scene(folder, check_files=False)
    with pytest.raises(DataError, match="frame 'frame0001.png'"):
        FileSceneSource([record]).load_frame(0, 1)
    shutil.rmtree(folder / "sparse")
    with pytest.raises(DataError, match="scene 'broken': cannot read the COLMAP model"):
        colmap.load_colmap_scene(folder)


def test_against_pycolmap(tmp_path, views):
    pycolmap = pytest.importorskip("pycolmap")
    colmap.write_colmap_scene(tmp_path / "s", views["images_u8"], views["extrinsics"], views["intrinsics"])
    rec = pycolmap.Reconstruction(str(tmp_path / "s" / "sparse" / "0"))
    for image in rec.images.values():
        i = int(image.name[5:9])
        np.testing.assert_allclose(image.cam_from_world().matrix(), views["extrinsics"][i], atol=1e-12)
        # pycolmap projects with COLMAP's pixel convention: ours + 0.5.
        point = geo.camera_centers(views["extrinsics"][i]) + views["extrinsics"][i][2, :3] * 3.0
        uv, _ = geo.project(point[None], views["extrinsics"][i], views["intrinsics"][i])
        np.testing.assert_allclose(image.project_point(point), uv[0] + 0.5, atol=1e-9)
