"""Preprocessing against upstream's outputs (preprocess/expected.npz, bit-exact) and the metadata's geometry."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from vggt_jax.inference.preprocess import (
    ImageMeta,
    decoded_rgb_sha256,
    load_and_preprocess_images,
    load_and_preprocess_images_square,
)


@pytest.fixture(scope="module")
def expected(fixture_file):
    with np.load(fixture_file("preprocess/expected.npz")) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def files(expected, fixture_file):
    return [fixture_file(f"preprocess/{name}") for name in expected["files"]]


def as_float(u8: np.ndarray) -> np.ndarray:
    """The fixture's storage: upstream's float32 tensor is exactly ``u8 / 255`` in float32."""
    return u8.astype(np.float32) / np.float32(255)


def test_decoder_matches_fixture_machine(expected, files):
    """Same decoded RGB bytes (after the white composite) as the machine that made the fixtures."""
    meta = json.loads(str(expected["meta_json"]))
    for path in files:
        with Image.open(path) as img:
            assert decoded_rgb_sha256(img) == meta[f"input__{path.stem}"]["decoded_rgb_sha256"], path.name


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_whole_list_bit_exact(expected, files, mode):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, metas = load_and_preprocess_images(files, mode)
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images, as_float(expected[f"{mode}_all_u8"]))
    # Upstream printed a warning for the mixed crop shapes only.
    assert len(caught) == (1 if mode == "crop" else 0)
    if mode == "crop":
        assert "(154, 518), (350, 518), (392, 518), (518, 518)" in str(caught[0].message)
    assert [m.name for m in metas] == list(expected["files"])


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_single_images_bit_exact(expected, files, mode):
    for path in files:
        images, (meta,) = load_and_preprocess_images(path, mode)  # a single path is a source too
        np.testing.assert_array_equal(images, as_float(expected[f"{mode}__{path.stem}_u8"]), err_msg=path.name)
        assert meta.processed_hw == images.shape[2:]


@pytest.mark.parametrize("target", [518, 1024])
def test_square_bit_exact(expected, files, target):
    for path in files:
        images, coords, (meta,) = load_and_preprocess_images_square([path], target)
        np.testing.assert_array_equal(images, as_float(expected[f"square{target}__{path.stem}_u8"]), err_msg=path.name)
        np.testing.assert_array_equal(coords, expected[f"square{target}_coords__{path.stem}"])
        x1, y1 = coords[0, :2]
        np.testing.assert_allclose(meta.offset_xy, (x1, y1), rtol=1e-6)


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_content_mask_is_the_padding_complement(tmp_path, mode):
    """On black images, the white (1.0) pixels are exactly the padding: the metas' boxes say where content is."""
    paths = []
    for w, h in [(640, 480), (300, 700), (1000, 300)]:
        paths.append(tmp_path / f"black_{w}x{h}.png")
        Image.new("RGB", (w, h)).save(paths[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images, metas = load_and_preprocess_images(paths, mode)
    for image, meta in zip(images, metas, strict=True):
        np.testing.assert_array_equal(meta.content_mask(), image[0] < 1.0, err_msg=meta.name)
    _, _, (meta,) = load_and_preprocess_images_square(paths[0], 518)
    assert meta.content_box == (0, 65, 518, 453)


@pytest.mark.parametrize("mode", ["crop", "pad", "square"])
def test_meta_maps_pixels_back_to_the_original(tmp_path, mode):
    """A white blob's centroid in the model input maps back to its centre in the original image (bicubic resizing
    is symmetric, so the centroid moves by well under a pixel; 0.15 px measured margin)."""
    w, h, centre = 640, 480, (401.5, 151.5)  # pixel-centre coordinates of the blob's centre in the original
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 6.0**2))
    path = tmp_path / "blob.png"
    Image.fromarray(np.round(255 * blob).astype(np.uint8)).convert("RGB").save(path)
    if mode == "square":
        images, _, (meta,) = load_and_preprocess_images_square(path, 518)
        weights = images[0, 0]
    else:
        images, (meta,) = load_and_preprocess_images(path, mode)
        weights = np.where(meta.content_mask(), images[0, 0], 0.0)
    py, px = np.mgrid[: weights.shape[0], : weights.shape[1]]
    processed = np.array([(px * weights).sum(), (py * weights).sum()]) / weights.sum()
    np.testing.assert_allclose(meta.points_to_original(processed), centre, atol=0.15)
    np.testing.assert_allclose(meta.points_to_processed(meta.points_to_original(processed)), processed, atol=1e-9)


def test_meta_intrinsics_agree_with_point_mapping():
    meta = ImageMeta(
        "x.png", None, (480, 640), (518, 518), (0.809375, 0.8166666666666667), (0.0, 63.0), (0, 63, 518, 455)
    )
    k_processed = np.array([[400.0, 0, 259], [0, 410.0, 259], [0, 0, 1]])
    k_original = meta.intrinsics_to_original(k_processed)
    ray = np.array([0.3, -0.2, 1.0])
    p_processed, p_original = (k_processed @ ray)[:2], (k_original @ ray)[:2]
    np.testing.assert_allclose(meta.points_to_original(p_processed), p_original, atol=1e-12)
    np.testing.assert_allclose(meta.intrinsics_to_processed(k_original), k_processed, atol=1e-12)
    assert json.loads(json.dumps(meta.to_json()))["original_hw"] == [480, 640]


def test_pil_images_and_single_image(files):
    with Image.open(files[0]) as img:
        images, (meta,) = load_and_preprocess_images([img.copy()])
    reference, _ = load_and_preprocess_images([files[0]])
    np.testing.assert_array_equal(images, reference)
    assert images.shape == (1, 3, 392, 518) and meta.name == "image_0000.png" and meta.path is None
