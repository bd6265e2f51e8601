"""COLMAP through pycolmap: models with multi-view tracks round-trip (.bin/.txt), camera and pose conversions,
dense arrays."""

from __future__ import annotations

import numpy as np
import pycolmap
import pytest

from vggt_jax.geometry import colmap_io, quat_to_mat


def _cameras(count, rng):
    rotation = quat_to_mat(rng.normal(size=(count, 4)))
    return np.concatenate([rotation, rng.normal(size=(count, 3, 1))], axis=-1)


def _intrinsics(count):
    k = np.array([[50.0, 0.0, 19.5], [0.0, 51.0, 14.0], [0.0, 0.0, 1.0]])
    return np.repeat(k[None], count, axis=0)


@pytest.mark.parametrize("fmt", ["bin", "txt"])
def test_model_with_tracks_round_trip(tmp_path, fmt):
    rng = np.random.default_rng(0)
    extrinsics, intrinsics = _cameras(3, rng), _intrinsics(3)
    keypoints = [rng.uniform(0, 40, (n, 2)) for n in (3, 2, 4)]
    rec = colmap_io.new_reconstruction(
        extrinsics, intrinsics, np.full((3, 2), (30, 40)), ["sub/a.png", "b.png", "c.png"], keypoints=keypoints
    )
    # Point 1 seen in all three images, point 2 in two, point 3 once.
    image_ids = np.array([1, 2, 3, 1, 3, 3])
    idxs = np.array([0, 1, 2, 2, 0, 3])
    xyz, rgb = rng.normal(size=(3, 3)), rng.integers(0, 256, (3, 3)).astype(np.uint8)
    ids = colmap_io.add_points(rec, xyz, rgb, image_ids, idxs, track_starts=np.array([0, 3, 5, 6]))
    files = colmap_io.model_files(rec, fmt)
    assert sorted(files) == sorted(f"{n}.{fmt}" for n in ("cameras", "images", "points3D", "rigs", "frames"))
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    back = colmap_io.read_model(tmp_path)
    assert back.num_images() == 3 and back.num_points3D() == 3
    for k in range(3):
        image = back.images[k + 1]
        np.testing.assert_allclose(colmap_io.image_extrinsic(image), extrinsics[k], atol=1e-12)
        np.testing.assert_allclose(colmap_io.camera_intrinsic(back.cameras[image.camera_id]), intrinsics[k])
        np.testing.assert_allclose(np.array([p.xy for p in image.points2D]), keypoints[k], atol=1e-12)
    lengths = [back.points3D[int(i)].track.length() for i in ids]
    assert lengths == [3, 2, 1]
    np.testing.assert_allclose(np.array([back.points3D[int(i)].xyz for i in ids]), xyz, atol=1e-12)
    assert back.images[3].points2D[3].point3D_id == ids[2]


def test_text_format_refuses_names_with_spaces():
    rec = colmap_io.new_reconstruction(_cameras(1, np.random.default_rng(0)), _intrinsics(1), [(30, 40)], ["a b.png"])
    with pytest.raises(ValueError, match="whitespace"):
        colmap_io.model_files(rec, "txt")
    assert "images.bin" in colmap_io.model_files(rec, "bin")


def test_shared_camera_and_models():
    rng = np.random.default_rng(1)
    intrinsics = _intrinsics(2)
    intrinsics[1, 0, 0] = 52.0
    for model, count in (("SIMPLE_PINHOLE", 3), ("PINHOLE", 4), ("SIMPLE_RADIAL", 4)):
        rec = colmap_io.new_reconstruction(
            _cameras(2, rng), intrinsics, np.full((2, 2), (30, 40)), ["a", "b"], camera_model=model, shared_camera=True
        )
        assert rec.num_cameras() == 1 and {im.camera_id for im in rec.images.values()} == {1}
        camera = rec.cameras[1]
        assert camera.model_name == model and len(camera.params) == count
    # The shared focal lengths are the mean over frames: fx (50, 52) -> 51, fy 51.
    np.testing.assert_allclose(camera.params[0], 51.0)
    with pytest.raises(ValueError, match="one size"):
        colmap_io.new_reconstruction(_cameras(2, rng), intrinsics, [(30, 40), (40, 30)], ["a", "b"], shared_camera=True)
    with pytest.raises(ValueError, match="OPENCV"):
        colmap_io.colmap_camera(1, intrinsics[0], 40, 30, model="OPENCV")


def test_dense_array_round_trip(tmp_path):
    depth = np.random.default_rng(0).uniform(0, 5, (7, 11)).astype(np.float32)
    colmap_io.write_array(tmp_path / "d.bin", depth)
    np.testing.assert_array_equal(colmap_io.read_array(tmp_path / "d.bin"), depth)
    # Column-major layout: the first stored values run down the first image column... of the transposed array,
    # i.e. along the first image row, as COLMAP's own read_array expects.
    raw = np.fromfile(tmp_path / "d.bin", dtype="<f4", offset=len(b"11&7&1&"))
    np.testing.assert_array_equal(raw[:11], depth[0])


def test_pixel_convention_shift():
    """COLMAP's principal point is 0.5 px larger than ours (its top-left pixel centre is (0.5, 0.5))."""
    cam = pycolmap.Camera(model="SIMPLE_PINHOLE", width=40, height=30, params=[50.0, 20.0, 15.0], camera_id=1)
    np.testing.assert_array_equal(colmap_io.camera_intrinsic(cam)[:2, 2], [19.5, 14.5])
    opencv = dict(model="OPENCV", width=40, height=30, camera_id=1)
    with pytest.raises(ValueError, match="undistort"):
        colmap_io.camera_intrinsic(pycolmap.Camera(**opencv, params=[50, 50, 20, 15, 0.1, 0, 0, 0.0]))
    fisheye = pycolmap.Camera(
        model="OPENCV_FISHEYE", width=40, height=30, camera_id=1, params=[50, 50, 20, 15, 0, 0, 0, 0]
    )
    with pytest.raises(ValueError, match="not a pinhole"):
        colmap_io.camera_intrinsic(fisheye)
    k = colmap_io.camera_intrinsic(pycolmap.Camera(**opencv, params=[50, 51, 20, 15, 0, 0, 0, 0.0]))
    np.testing.assert_array_equal(np.diag(k), [50, 51, 1])
    pinhole = colmap_io.colmap_camera(3, k, 40, 30)
    assert (pinhole.model_name, pinhole.width, pinhole.height, pinhole.camera_id) == ("PINHOLE", 40, 30, 3)
    np.testing.assert_array_equal(pinhole.params, [50, 51, 20, 15])
    np.testing.assert_array_equal(colmap_io.camera_intrinsic(pinhole), k)


def test_pose_round_trip():
    """COLMAP's cam_from_world and our extrinsic are the same camera-from-world pose; projections agree up to the
    half-pixel shift."""
    rng = np.random.default_rng(1)
    extrinsic = _cameras(1, rng)
    rec = colmap_io.new_reconstruction(extrinsic, _intrinsics(1), [(30, 40)], ["a.png"])
    image = rec.images[1]
    np.testing.assert_allclose(colmap_io.image_extrinsic(image), extrinsic[0], atol=1e-15)
    point = -extrinsic[0, :, :3].T @ extrinsic[0, :, 3] + 3.0 * extrinsic[0, 2, :3]  # 3 units in front
    cam = extrinsic[0, :, :3] @ point + extrinsic[0, :, 3]
    ours = (_intrinsics(1)[0] @ cam)[:2] / cam[2]
    np.testing.assert_allclose(image.project_point(point), colmap_io.to_colmap_pixels(ours), atol=1e-9)
