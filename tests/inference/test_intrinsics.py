"""Known cameras (``--intrinsics``, issue #39): COLMAP cameras.txt, JSON and EXIF read to this project's pixel grid,
every bad file refused in one line, and the predictions made consistent with them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from vggt_jax.inference.intrinsics import IntrinsicsError, apply_known_intrinsics, read_intrinsics
from vggt_jax.inference.predictor import Predictions

NAMES = ["a.jpg", "b.jpg", "c.jpg"]
SIZES = [(60, 80), (60, 80), (40, 120)]  # (h, w)


def _read(tmp_path, name, text, count=3):
    path = tmp_path / name
    path.write_text(text)
    return read_intrinsics(str(path), NAMES[:count], SIZES[:count], [None] * count)


def test_colmap_cameras_by_size_and_by_images_txt(tmp_path):
    text = "# comment\n1 PINHOLE 80 60 70 72 40.5 30.5\n2 SIMPLE_RADIAL 120 40 90 60 20 0\n"
    k = _read(tmp_path, "cameras.txt", text)
    np.testing.assert_allclose(k[0], [[70, 0, 40], [0, 72, 30], [0, 0, 1]])  # COLMAP's +0.5 removed
    np.testing.assert_allclose(k[1], k[0])
    np.testing.assert_allclose(k[2], [[90, 0, 59.5], [0, 90, 19.5], [0, 0, 1]])
    # Two cameras of one size: ambiguous without images.txt, resolved with it.
    text += "3 SIMPLE_PINHOLE 80 60 50 40 30\n"
    with pytest.raises(IntrinsicsError, match="cameras \\[1, 3\\] all have image 'a.jpg'.*images.txt"):
        _read(tmp_path, "cameras.txt", text)
    lines = ["# images", "1 1 0 0 0 0 0 0 3 a.jpg", "", "2 1 0 0 0 0 0 0 1 b.jpg", "", "3 1 0 0 0 0 0 0 2 c.jpg", ""]
    (tmp_path / "images.txt").write_text("\n".join(lines))
    k = _read(tmp_path, "cameras.txt", text)
    assert k[0, 0, 0] == 50 and k[1, 0, 0] == 70 and k[2, 0, 0] == 90


def test_json_shared_and_per_image(tmp_path):
    per_image = {n: {"fx": 60.0 + i, "fy": 61.0, "cx": 39.0, "cy": 19.0} for i, n in enumerate(NAMES)}
    k = _read(tmp_path, "k.json", json.dumps(per_image))
    assert [m[0, 0] for m in k] == [60, 61, 62] and (k[:, 0, 2] == 39).all()  # OpenCV's convention: as given
    one = read_intrinsics(str(tmp_path / "k.json"), NAMES[:2], SIZES[:2], [None] * 2)
    tmp = tmp_path / "shared.json"
    tmp.write_text(json.dumps({"fx": 70, "fy": 70}))
    shared = read_intrinsics(str(tmp), NAMES[:2], SIZES[:2], [None] * 2)
    np.testing.assert_allclose(shared[:, :2, 2], [[39.5, 29.5]] * 2)  # the image centre
    assert one.shape == (2, 3, 3)


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("k.json", '{"fx": 60}', "field 'fy' is missing"),
        ("k.json", '{"fx": "60", "fy": 60}', "field 'fx' must be a finite number"),
        ("k.json", '{"fx": 60, "fy": 60, "skew": 0}', "unknown field"),
        ("k.json", '{"fx": -1, "fy": 60}', "focal length must be a finite number > 0"),
        ("k.json", '{"fx": 60, "fy": 60, "cx": 500}', "principal point .* is outside the 80x60 image"),
        ("k.json", '{"a.jpg": {"fx": 60, "fy": 60}}', "no entry for image 'b.jpg'"),
        ("k.json", '{"fx": 60, "fy"', "not readable JSON"),
        ("k.json", "[1, 2]", "expected a JSON object"),
        ("cameras.txt", "1 OPENCV 80 60 70 70 40 30 0.1 0 0 0\n", "distortion .* undistort the images first"),
        ("cameras.txt", "1 FISHEYE 80 60 70 70 40 30\n", "camera model 'FISHEYE' is not one of"),
        ("cameras.txt", "1 PINHOLE 80 60 70 70 40\n", "line 1: PINHOLE has 4 parameters, got 3"),
        ("cameras.txt", "1 PINHOLE 80 60 seventy 70 40 30\n", "line 1: could not convert"),
        ("cameras.txt", "1 PINHOLE 100 60 70 70 40 30\n", "no camera of image 'a.jpg''s size 80x60"),
        ("cameras.txt", "# nothing\n", "no camera in the file"),
        ("intrinsics.yaml", "fx: 1", "expected a COLMAP cameras.txt"),
    ],
)
def test_bad_files_give_one_error_naming_the_field(tmp_path, name, text, match):
    with pytest.raises(IntrinsicsError, match=match) as info:
        _read(tmp_path, name, text, count=2)  # two images of one size
    assert "\n" not in str(info.value)


def test_shared_json_for_several_sizes_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(IntrinsicsError, match="several sizes"):
        _read(tmp_path, "k.json", '{"fx": 60, "fy": 60}')
    with pytest.raises(IntrinsicsError, match="no such file"):
        read_intrinsics(str(tmp_path / "nope.txt"), NAMES, SIZES, [None] * 3)


def _jpeg(path, size, focal_35mm=None):
    image = Image.new("RGB", size, (120, 130, 140))
    exif = Image.Exif()
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    image.save(path, exif=exif)
    return str(path)


def test_exif_focal_length(tmp_path):
    """28 mm (35 mm equivalent) on a 3:2 image: 28 / 36 of its width; on 4:3, over the diagonal."""
    paths = [_jpeg(tmp_path / "p.jpg", (300, 200), 28), _jpeg(tmp_path / "q.jpg", (400, 300), 28)]
    k = read_intrinsics("exif", ["p.jpg", "q.jpg"], [(200, 300), (300, 400)], paths)
    assert math.isclose(k[0, 0, 0], 28 / 36 * 300) and k[0, 0, 0] == k[0, 1, 1]
    assert math.isclose(k[1, 0, 0], 28 * 500 / math.hypot(36, 24))
    np.testing.assert_allclose(k[:, :2, 2], [[149.5, 99.5], [199.5, 149.5]])
    plain = _jpeg(tmp_path / "plain.jpg", (300, 200))
    with pytest.raises(IntrinsicsError, match="image 'plain.jpg' has no EXIF field FocalLengthIn35mmFilm"):
        read_intrinsics("exif", ["p.jpg", "plain.jpg"], [(200, 300)] * 2, [paths[0], plain])
    with pytest.raises(IntrinsicsError, match="not a file"):
        read_intrinsics("exif", ["frame.png"], [(200, 300)], [None])


class _Meta:
    """The original image is the model input (scale 1, no offset)."""

    def intrinsics_to_processed(self, k):
        return k


def test_known_intrinsics_rescale_depth_and_keep_the_pixels_rays_consistent():
    """Depth scales by known / predicted focal; unprojected with the known cameras, each pixel's point keeps its
    lateral position in the camera (x, y) where the model put it, and its projection is the pixel itself."""
    rng = np.random.default_rng(0)
    count, height, width = 2, 6, 8
    predicted = np.tile(np.array([[40.0, 0, 3.5], [0, 40.0, 2.5], [0, 0, 1]]), (count, 1, 1))
    known = predicted.copy()
    known[:, 0, 0], known[:, 1, 1] = [50.0, 60.0], [50.0, 60.0]
    extrinsic = np.tile(np.eye(4)[:3], (count, 1, 1))
    extrinsic[1, :, 3] = [0.3, 0.0, 0.1]
    depth = rng.uniform(2, 3, (count, height, width)).astype(np.float32)
    pred = Predictions(
        images=np.zeros((count, 3, height, width), np.float32),
        pose_enc=np.zeros((count, 9), np.float32),
        pose_enc_list=np.zeros((1, count, 9), np.float32),
        extrinsic=extrinsic,
        intrinsic=predicted.astype(np.float32),
        depth=depth,
        depth_conf=np.ones_like(depth),
        world_points=None,
        world_points_conf=None,
        world_points_from_depth=np.zeros((count, height, width, 3), np.float32),
        metas=[_Meta(), _Meta()],
        intrinsic_original=predicted,
    )
    new = apply_known_intrinsics(pred, known)
    np.testing.assert_allclose(new.depth, depth * np.array([1.25, 1.5])[:, None, None], rtol=1e-6)
    np.testing.assert_array_equal(new.intrinsic_original, known)
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).astype(np.float64)
    for s in range(count):
        world = new.world_points_from_depth[s].astype(np.float64)
        cam = world @ extrinsic[s, :, :3].T + extrinsic[s, :, 3]
        lateral_before = (grid - predicted[s, :2, 2]) / predicted[s, 0, 0] * depth[s][..., None]
        np.testing.assert_allclose(cam[..., :2], lateral_before, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cam[..., :2] / cam[..., 2:] * known[s, 0, 0] + known[s, :2, 2], grid, atol=1e-4)
    # pose_enc's field of view follows: fov_h = 2 atan(H / 2 / fy).
    np.testing.assert_allclose(new.pose_enc[:, 7], 2 * np.arctan(height / 2 / known[:, 1, 1]), rtol=1e-6)
