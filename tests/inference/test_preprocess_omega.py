"""VGGT-Omega's preprocessing, bit for bit against shared/fixtures/omega/preprocess (upstream's load_fn.py outputs
for both modes at 512 and 256, each file alone and all together)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vggt_jax.inference.preprocess import decoded_rgb_sha256
from vggt_jax.inference.preprocess_omega import load_and_preprocess_images_omega

CASES = [(mode, res) for mode in ("balanced", "max_size") for res in (512, 256)]


@pytest.fixture(scope="module")
def expected(fixture_file):
    with np.load(fixture_file("omega/preprocess/expected.npz")) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, json.loads(str(arrays.pop("meta_json")))


@pytest.mark.parametrize("mode, res", CASES)
def test_every_array_bit_exact(fixture_file, expected, mode, res):
    arrays, _ = expected
    folder = fixture_file("omega/preprocess")
    paths = [folder / name for name in arrays["files"]]
    for k, path in enumerate(paths):
        images, metas = load_and_preprocess_images_omega([path], mode, res)
        golden = arrays[f"{mode}{res}__{path.stem}_u8"].astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(images, golden, err_msg=f"{mode}{res} {path.name}")
        assert list(images.shape[-2:]) == list(arrays[f"shapes__{mode}{res}"][k])
        assert metas[0].processed_hw == images.shape[-2:]
    with pytest.warns(UserWarning, match="different shapes"):
        images, metas = load_and_preprocess_images_omega(paths, mode, res)
    np.testing.assert_array_equal(images, arrays[f"{mode}{res}_all_u8"].astype(np.float32) / np.float32(255))


def test_decoder_matches_the_fixtures(fixture_file, expected):
    from PIL import Image

    _, meta = expected
    for stem, info in meta["inputs"].items():
        path = next(fixture_file("omega/preprocess").glob(f"{stem}.*"))
        with Image.open(path) as img:
            assert decoded_rgb_sha256(img) == info["decoded_rgb_sha256"], stem


def test_meta_maps_the_crop_back(fixture_file):
    """The 960x280 image is centre-cropped to 560x280 (aspect 2:1) before the resize: a processed pixel maps back
    into the kept middle of the original."""
    images, (meta,) = load_and_preprocess_images_omega([fixture_file("omega/preprocess/wide_960x280.png")])
    assert images.shape[-2:] == (368, 720)
    left, right = meta.points_to_original(np.array([[-0.5, 0.0], [719.5, 0.0]]))[:, 0]
    assert left == pytest.approx(200 - 0.5) and right == pytest.approx(760 - 0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="crop"), "mode must be one of"),
        (dict(image_resolution=0), "must be positive"),
        (dict(image_resolution=500), "not a multiple of the patch size 16"),
    ],
)
def test_bad_arguments(fixture_file, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_and_preprocess_images_omega([fixture_file("omega/preprocess/landscape_600x400.png")], **kwargs)
