"""Transforms alone: crops and resizes keep intrinsics exact, colour ops, GT unprojection and normalisation."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from vggt_jax.data import transforms
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import pixel_grid, project_points


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(seed=7, num_frames=2, height=96, width=128, trajectory="orbit")


@pytest.fixture(scope="module")
def frame(scene):
    view = scene.render_view(scene.extrinsics[0], scene.intrinsics[0], 96, 128)
    return dict(view, image_u8=np.round(view["image"] * 255).astype(np.uint8))


def test_crop_moves_content_and_principal_point():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    depth = rng.uniform(1, 2, (20, 30)).astype(np.float32)
    k = np.array([[50.0, 0, 14.0], [0, 50.0, 9.0], [0, 0, 1]])
    img, d, k2 = transforms.crop(image, depth, k, top=-2, left=5, height=10, width=30)
    np.testing.assert_array_equal(img[2:, :25], image[:8, 5:])
    assert (img[:2] == 0).all() and (img[:, 25:] == 0).all() and (d[:2] == 0).all()
    np.testing.assert_array_equal(k2[:2, 2], [14.0 - 5, 9.0 + 2])


@pytest.mark.parametrize(
    "center, size, target, strict",
    [(49.5, 100, 64, False), (30.2, 100, 80, False), (70.0, 100, 64, True), (3.0, 10, 30, True)],
)
def test_principal_point_window_centres_the_principal_point(center, size, target, strict):
    start, length = transforms.principal_point_window(center, size, target, strict)
    assert abs((center - start) - (length - 1) / 2) <= 0.5
    if strict:
        assert length == target
    else:
        assert 0 <= start and start + length <= size and length <= target


def test_resize_matches_pillow_sampling_positions():
    """Bicubic/Lanczos reproduce a linear ramp, so the resized ramp reads out the input coordinate that the
    intrinsics update assigns to each output pixel: x_in = (x_out + 0.5) / s - 0.5."""
    ramp = np.tile(np.arange(200, dtype=np.float64)[None, :, None], (4, 1, 3))
    image, depth = ramp.astype(np.uint8), np.ones((4, 200), np.float32)
    k = np.array([[100.0, 0, 99.5], [0, 100.0, 1.5], [0, 0, 1]])
    for out_w in (333, 120):
        out, _, k2 = transforms.resize(image, depth, k, (4, out_w))
        s = out_w / 200
        x_in = (np.arange(out_w) + 0.5) / s - 0.5
        interior = (x_in > 4) & (x_in < 195)
        # uint8 rounding of the ramp value: at most 0.5 + the filter's overshoot.
        assert np.abs(out[1, interior, 0] - x_in[interior]).max() <= 1.0
        np.testing.assert_allclose(k2[0], [100.0 * s, 0, (99.5 + 0.5) * s - 0.5])


def test_transform_frame_keeps_ground_truth_on_the_same_pixels(scene, frame):
    """Send each pixel's own index through the geometric transform (depth is resampled by nearest neighbour, so
    it carries indices exactly); then the GT world point of the source pixel, projected with the new intrinsics,
    lands where the source pixel's centre maps: on the output pixel, to sub-pixel accuracy."""
    index = (np.arange(96 * 128, dtype=np.float32) + 1).reshape(96, 128)
    rng = np.random.default_rng(1)
    for target in ((56, 84), (84, 84), (70, 112)):
        params = transforms.sample_frame_params(rng)
        img, carried, k2 = transforms.transform_frame(frame["image_u8"], index, frame["intrinsic"], target, params)
        _, depth, k3 = transforms.transform_frame(frame["image_u8"], frame["depth"], frame["intrinsic"], target, params)
        np.testing.assert_array_equal(k2, k3)
        assert img.shape == target + (3,) and depth.shape == target
        src = carried.astype(np.int64) - 1
        ok = (src >= 0) & frame["valid"].reshape(-1)[np.maximum(src, 0)]
        points = frame["world_points"].reshape(-1, 3)[src[ok]].astype(np.float64)
        uv, _ = project_points(points, frame["extrinsic"], k2)
        out_px = np.stack(pixel_grid(*target), -1)[ok]
        scale = np.diag(k2)[:2] / np.diag(frame["intrinsic"])[:2]  # per axis (x, y)
        # Nearest-neighbour resampling: the source pixel's centre is within half a source pixel of the output
        # pixel; float32 world points add ~1e-5 px.
        assert (np.abs(uv - out_px).max(0) <= 0.5 * scale + 1e-4).all()
        # The principal point ends up within half a pixel of the image centre.
        assert np.abs(k2[:2, 2] - (np.array(target[::-1]) - 1) / 2).max() <= 0.5
        # Depth carried along is the depth of those same source pixels.
        np.testing.assert_array_equal(depth[ok], frame["depth"].reshape(-1)[src[ok]])


def test_transform_frame_never_pads_an_off_centre_image():
    """The zoom crop stays inside the image (the largest window centred on the principal point), and the resize
    margin covers the final crop, so no pixel of the output is padding."""
    rng = np.random.default_rng(3)
    for cx, cy in ((20.0, 40.0), (90.0, 15.0), (63.5, 47.5)):
        k = np.array([[100.0, 0, cx], [0, 100.0, cy], [0, 0, 1]])
        image, depth = np.full((96, 128, 3), 7, np.uint8), np.ones((96, 128), np.float32)
        for target in ((56, 84), (84, 84)):
            params = transforms.sample_frame_params(rng)
            img, d, k2 = transforms.transform_frame(image, depth, k, target, params)
            assert (d > 0).all() and (img > 0).all()


def test_transformed_frame_matches_a_render_with_the_new_intrinsics(scene, frame):
    params = dict(zoom_hw=(0.9, 0.85), margin=0.1)
    img, depth, k2 = transforms.transform_frame(frame["image_u8"], frame["depth"], frame["intrinsic"], (56, 84), params)
    ref = scene.render_view(frame["extrinsic"], k2, 56, 84)
    both = (depth > 0) & ref["valid"]
    rel = np.abs(depth[both] - ref["depth"][both]) / ref["depth"][both]
    # Nearest-neighbour depth is exact except next to depth edges and on steep surfaces.
    assert np.median(rel) < 0.01 and np.mean(rel > 0.05) < 0.05
    assert np.median(np.abs(img / 255.0 - ref["image"])) < 0.05


def test_color_jitter_identity_and_ops():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (8, 9, 3)).astype(np.float32)
    ident = dict(apply=True, order=[0, 1, 2, 3], brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0, gray=False)
    np.testing.assert_allclose(transforms.color_jitter(image, ident), image, atol=1e-6)
    np.testing.assert_allclose(transforms.color_jitter(image, dict(ident, brightness=0.5)), image * 0.5, atol=1e-6)
    gray = transforms.color_jitter(image, dict(ident, apply=False, gray=True))
    np.testing.assert_allclose(gray[..., 0], gray[..., 2]) and np.testing.assert_allclose(gray[..., 0], gray[..., 1])
    shifted = transforms.color_jitter(image, dict(ident, hue=0.1))
    for (r, g, b), out in zip(image.reshape(-1, 3)[:20], shifted.reshape(-1, 3)[:20], strict=True):
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        np.testing.assert_allclose(out, colorsys.hsv_to_rgb((h + 0.1) % 1.0, s, v), atol=1e-5)
    params = transforms.sample_color_params(
        np.random.default_rng(1),
        5,
        dict(
            brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1, p=0.9, gray_p=0.05, cojitter=True, cojitter_ratio=0.0
        ),
    )
    assert all(p is params[0] for p in params)  # cojitter_ratio 0: always shared


def test_world_points_match_upstream_unprojection(fixture_file):
    f = np.load(fixture_file("geometry.npz"))
    depth = f["unproj__depth_map"][..., 0]
    points, masks = transforms.world_points_from_depth(depth, f["unproj__extrinsics"], f["unproj__intrinsics"])
    np.testing.assert_array_equal(masks, depth > 1e-8)
    # Upstream rounds camera-frame points to float32 before the rigid transform: ~1e-7 relative.
    np.testing.assert_allclose(points[masks], f["unproj__world_points"][masks], rtol=1e-6, atol=1e-6)


def test_normalisation_matches_upstream(fixture_file):
    f = np.load(fixture_file("losses.npz"))
    for b in range(f["norm_in__extrinsics"].shape[0]):
        ext, points, depths, _ = transforms.normalize_to_first_camera(
            f["norm_in__extrinsics"][b],
            f["norm_in__world_points"][b],
            f["norm_in__depths"][b],
            f["norm_in__point_masks"][b],
        )
        # float64 on both sides; only summation order differs.
        np.testing.assert_allclose(ext, f["norm_out__extrinsics"][b], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(points, f["norm_out__world_points"][b], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(depths, f["norm_out__depths"][b], rtol=1e-9, atol=1e-12)
