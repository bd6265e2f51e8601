"""COLMAP file formats: model .bin/.txt round trips (any track lengths), dense arrays, camera and pose conversions."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_jax.geometry import colmap_io, quat_to_mat


def _model_with_tracks(track_lengths=(2, 1)):
    rng = np.random.default_rng(0)
    cameras = {
        1: colmap_io.Camera(1, "PINHOLE", 40, 30, np.array([50.0, 51.0, 20.0, 15.5])),
        2: colmap_io.Camera(2, "SIMPLE_RADIAL", 640, 480, np.array([500.0, 320.0, 240.0, 0.01])),
    }
    images = {}
    for i in (1, 2):
        q = rng.normal(size=4)
        images[i] = colmap_io.ImageEntry(
            i,
            q / np.linalg.norm(q),
            rng.normal(size=3),
            i,
            f"sub dir/img{i}.png",
            rng.uniform(0, 40, (3, 2)),
            np.array([7, -1, 8]),
        )
    lengths = np.array(track_lengths, np.int64)
    count = len(lengths)
    points = colmap_io.Points3D(
        ids=np.arange(7, 7 + count),
        xyz=rng.normal(size=(count, 3)),
        rgb=rng.integers(0, 256, (count, 3)).astype(np.uint8),
        errors=np.array([0.5, 1.25, -1.0])[:count],
        track_lengths=lengths,
        track_image_ids=rng.integers(1, 3, lengths.sum()),
        track_point2d_idxs=rng.integers(0, 3, lengths.sum()),
    )
    return cameras, images, points


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("track_lengths", [(2, 1), (1, 1, 1), ()])
def test_model_round_trip(tmp_path, binary, track_lengths):
    cameras, images, points = _model_with_tracks(track_lengths)
    colmap_io.write_model(tmp_path, cameras, images, points, binary=binary)
    cams2, ims2, pts2 = colmap_io.read_model(tmp_path)
    assert cams2.keys() == cameras.keys() and ims2.keys() == images.keys()
    for k, c in cameras.items():
        assert (cams2[k].model, cams2[k].width, cams2[k].height) == (c.model, c.width, c.height)
        np.testing.assert_array_equal(cams2[k].params, c.params)
    for k, im in images.items():
        assert ims2[k].name == im.name and ims2[k].camera_id == im.camera_id
        for field in ("qvec", "tvec", "xys", "point3d_ids"):
            np.testing.assert_array_equal(getattr(ims2[k], field), getattr(im, field))
    for field in ("ids", "xyz", "rgb", "errors", "track_lengths", "track_image_ids", "track_point2d_idxs"):
        np.testing.assert_array_equal(getattr(pts2, field), getattr(points, field), err_msg=field)


def test_text_model_is_colmaps_layout():
    """What the exporter's users see: COLMAP's header comments, an error of -1 written as COLMAP writes it."""
    cameras, images, points = _model_with_tracks((1, 1, 1))
    files = colmap_io.model_files(cameras, images, points, binary=False)
    header = files["points3D.txt"].decode().splitlines()[2]
    assert header == "# Number of points: 3, mean track length: 1"
    assert files["points3D.txt"].decode().splitlines()[-1].split()[7] == "-1"
    assert "mean observations per image: 3.0" in files["images.txt"].decode()


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
    cam = colmap_io.Camera(1, "SIMPLE_PINHOLE", 40, 30, np.array([50.0, 20.0, 15.0]))
    np.testing.assert_array_equal(colmap_io.camera_intrinsic(cam)[:2, 2], [19.5, 14.5])
    with pytest.raises(ValueError, match="undistort"):
        colmap_io.camera_intrinsic(colmap_io.Camera(1, "OPENCV", 40, 30, np.array([50, 50, 20, 15, 0.1, 0, 0, 0.0])))
    k = colmap_io.camera_intrinsic(colmap_io.Camera(1, "OPENCV", 40, 30, np.array([50, 51, 20, 15, 0, 0, 0, 0.0])))
    np.testing.assert_array_equal(np.diag(k), [50, 51, 1])
    pinhole = colmap_io.pinhole_camera(3, k, 40, 30)
    assert (pinhole.model, pinhole.width, pinhole.height) == ("PINHOLE", 40, 30)
    np.testing.assert_array_equal(pinhole.params, [50, 51, 20, 15])
    np.testing.assert_array_equal(colmap_io.camera_intrinsic(pinhole), k)


def test_pose_round_trip():
    """COLMAP's WXYZ quaternion and our extrinsic describe the same camera-from-world pose."""
    rng = np.random.default_rng(1)
    extrinsic = np.concatenate([quat_to_mat(rng.normal(size=4)), rng.normal(size=(3, 1))], axis=1)
    image = colmap_io.image_entry(5, 2, "a.png", extrinsic)
    assert image.qvec[0] >= 0 and (image.xys.shape, image.point3d_ids.shape) == ((0, 2), (0,))
    np.testing.assert_allclose(colmap_io.image_extrinsic(image), extrinsic, atol=1e-15)
