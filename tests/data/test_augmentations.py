"""Sensor and lens augmentations alone: exposure in linear light, motion blur, principal-point shift, and radial
distortion checked against the scene rendered through the same lens (ground-truth points keep their content)."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from vggt_jax.data import augment, transforms
from vggt_jax.data import config as data_config
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.data.tracks import build_tracks
from vggt_jax.geometry import camera_centers, pixel_grid, project_points

H, W = 72, 96


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(seed=3, num_frames=2, height=H, width=W, trajectory="orbit")


def _u8(image):
    return np.round(image * 255).astype(np.uint8)


def test_exposure_is_a_gain_in_linear_light_clipped_at_saturation():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
    same = augment.exposure(image, dict(apply=False, gain=4.0, gamma=2.0))
    np.testing.assert_array_equal(same, image.astype(np.float32) / 255.0)
    out = augment.exposure(image, dict(apply=True, gain=2.0, gamma=1.0)).reshape(-1, 3)[:, 0]
    linear_in = augment.srgb_to_linear(np.arange(256) / 255.0)
    linear_out = augment.srgb_to_linear(out.astype(np.float64))
    unclipped = linear_in * 2 < 1
    np.testing.assert_allclose(linear_out[unclipped], 2 * linear_in[unclipped], rtol=1e-5, atol=1e-6)
    assert (out[~unclipped] == 1).all() and unclipped.sum() == 188  # one stop up saturates the top 68 values
    assert np.all(np.diff(out) >= 0)
    # Gamma acts on the linear values: black and white stay, mid-grey moves.
    g = augment.exposure(image, dict(apply=True, gain=1.0, gamma=0.5)).reshape(-1, 3)[:, 0]
    assert g[0] == 0 and g[255] == 1
    np.testing.assert_allclose(g[128], 1.055 * (augment.srgb_to_linear(128 / 255) ** 0.5) ** (1 / 2.4) - 0.055, 1e-6)


def test_exposure_parameters_per_frame_or_per_scene():
    augs = data_config.get_config().augs
    augs.exposure_p = 1.0
    per_frame = augment.sample_exposure_params(np.random.default_rng(0), 4, augs)
    assert len({p["gain"] for p in per_frame}) == 4 and all(0.5 <= p["gain"] <= 2 for p in per_frame)
    augs.exposure_per_frame = False
    shared = augment.sample_exposure_params(np.random.default_rng(0), 4, augs)
    assert len({p["gain"] for p in shared}) == 1 and all(0.8 <= p["gamma"] <= 1.25 for p in shared)


def test_motion_blur_spreads_a_point_along_its_segment():
    image = np.zeros((41, 41, 3), np.float32)
    image[20, 20] = 1.0
    for angle, axis in ((0.0, 1), (np.pi / 2, 0)):
        out = augment.motion_blur(image, dict(apply=True, length=9.0, angle=angle))
        np.testing.assert_allclose(out.sum(), 3.0, rtol=1e-6)  # mass kept away from the border
        lit = np.argwhere(out[..., 0] > 0)
        assert len(lit) == 9 and np.ptp(lit[:, axis]) == 8 and np.ptp(lit[:, 1 - axis]) == 0
    diagonal = augment.motion_blur(image, dict(apply=True, length=5.0, angle=np.pi / 4))
    lit = np.argwhere(diagonal[..., 0] > 0)
    np.testing.assert_array_equal(lit[:, 0] - 20, lit[:, 1] - 20)
    flat = np.full((10, 12, 3), 0.3, np.float32)
    np.testing.assert_allclose(augment.motion_blur(flat, dict(apply=True, length=7.0, angle=1.0)), flat, atol=1e-6)
    assert augment.motion_blur(image, dict(apply=False, length=9.0, angle=0.0)) is image


def test_principal_point_shift_moves_the_crop_and_keeps_the_geometry(scene):
    view = scene.render_view(scene.extrinsics[0], scene.intrinsics[0], H, W)
    image, depth, k = _u8(view["image"]), view["depth"], view["intrinsic"]
    params = dict(zoom_hw=(1.0, 1.0), margin=0.2)
    centred = transforms.transform_frame(image, depth, k, (48, 64), params)
    shifted = transforms.transform_frame(image, depth, k, (48, 64), dict(params, pp_shift=(0.1, -0.05)))
    offset = shifted[2][:2, 2] - centred[2][:2, 2]
    np.testing.assert_allclose(offset, [6.4, -2.4], atol=1.0)
    dx, dy = (int(round(o)) for o in offset)
    # The same resized frame, cropped elsewhere: content moves with the principal point.
    np.testing.assert_array_equal(shifted[1][8:40, 8:56], centred[1][8 - dy : 40 - dy, 8 - dx : 56 - dx])
    assert (shifted[1] > 0).all()  # moved back inside the image, never padded


@pytest.mark.parametrize("distortion", [(0.3, 0.05), (-0.3, -0.05)])
def test_radial_distortion_matches_the_scene_seen_through_the_lens(scene, distortion):
    """Distorting a pinhole render equals rendering the scene through the lens: same depth, same points (from the
    distorted rays), same colours, up to resampling (nearest-neighbour depth: half a pixel's footprint, ~0.8% of
    the depth at this size); the undistorted frame is several times further off."""
    ext, k = scene.extrinsics[1], scene.intrinsics[1]
    pinhole = scene.render_view(ext, k, H, W)
    truth = scene.render_view(ext, k, H, W, distortion=distortion)
    image, depth = augment.radial_distort(_u8(pinhole["image"]), pinhole["depth"], k, distortion)
    if distortion[0] < 0:  # pincushion: every pixel sees inside the source frame
        assert abs((depth == 0).mean() - (~truth["valid"]).mean()) < 0.01
    else:  # barrel: the corners see beyond it
        assert (depth == 0).mean() > (~truth["valid"]).mean() + 0.02
    both = (depth > 0) & truth["valid"] & pinhole["valid"]

    def errors(d, img, dist):
        rel = np.abs(d[both] - truth["depth"][both]) / truth["depth"][both]
        points, _ = transforms.world_points_from_depth(d[None], ext[None], k[None], np.array([dist]))
        point_err = np.linalg.norm(points[0][both] - truth["world_points"][both], axis=-1) / truth["depth"][both]
        colour = np.abs(img.astype(np.float32) - _u8(truth["image"]).astype(np.float32))[both].mean(-1)
        return np.median(rel), np.percentile(point_err, 90), np.median(colour), np.mean(colour < 16)

    rel, point_err, colour, close = errors(depth, image, distortion)
    assert rel < 0.005 and point_err < 0.02 and colour < 3 and close > 0.85
    rel0, point_err0, colour0, close0 = errors(pinhole["depth"], _u8(pinhole["image"]), (0.0, 0.0))
    assert rel0 > 3 * rel and point_err0 > 3 * point_err and colour0 > 2 * colour and close0 < close - 0.1


@pytest.mark.parametrize("distortion", [(0.15, 0.03), (-0.15, -0.03)])
def test_distort_pixels_inverts_the_lens_rays(scene, distortion):
    k = scene.intrinsics[0]
    u, v = pixel_grid(H, W)
    rays = augment.distorted_pixel_rays(u, v, k, distortion)
    pinhole_px = np.stack([k[0, 0] * rays[..., 0] + k[0, 2], k[1, 1] * rays[..., 1] + k[1, 2]], -1)
    back, ok = augment.distort_pixels(pinhole_px, k, distortion, augment.corner_radius(k, H, W))
    assert ok.all()
    np.testing.assert_allclose(back, np.stack([u, v], -1), atol=1e-6)
    # Far outside the frame's radius there is no distorted pixel.
    _, ok_far = augment.distort_pixels(np.array([[k[0, 2] + 50 * k[0, 0], k[1, 2]]]), k, distortion, 1.5)
    assert not ok_far.any()


def test_tracks_into_a_distorted_frame_land_on_the_same_surface(scene):
    """A frame-0 point projected into a distorted frame 1 is what that lens sees at the track's sub-pixel position
    (ray cast through the lens); the pinhole projection of the same point is not. build_tracks' 5% depth test also
    passes points hidden just behind a nearer surface (about a third of this scene's tracks, with or without a lens:
    the undistorted frame is the baseline)."""
    views = [scene.render_view(scene.extrinsics[i], scene.intrinsics[i], H, W) for i in range(2)]
    ext, intr = scene.extrinsics[:2], scene.intrinsics[:2]

    def track_errors(distortion):
        _, depth1 = augment.radial_distort(_u8(views[1]["image"]), views[1]["depth"], intr[1], distortion)
        depths, dist = np.stack([views[0]["depth"], depth1]), np.array([(0.0, 0.0), distortion])
        points, masks = transforms.world_points_from_depth(depths, ext, intr, dist)
        tracks, vis, ok = build_tracks(points, depths, masks, ext, intr, 64, np.random.default_rng(0), distortions=dist)
        assert ok and vis[1].mean() > 0.5
        q = np.round(tracks[0]).astype(int)
        queries = points[0][q[:, 1], q[:, 0]][vis[1]].astype(np.float64)

        def seen_at(px):  # the scene point the lens sees at sub-pixel positions px, by ray casting
            rays = augment.distorted_pixel_rays(px[:, 0], px[:, 1], intr[1], distortion)
            directions = rays @ ext[1][:, :3]  # camera -> world rotation (R^T applied to row vectors)
            t, _ = scene.cast(camera_centers(ext[1]), directions)
            return camera_centers(ext[1]) + t[:, None] * directions

        err = np.linalg.norm(seen_at(tracks[1][vis[1]].astype(np.float64)) - queries, axis=-1)
        pinhole, _ = project_points(queries, ext[1], intr[1])
        return err, np.linalg.norm(seen_at(pinhole) - queries, axis=-1)

    err, pinhole_err = track_errors((0.3, 0.05))
    baseline, _ = track_errors((0.0, 0.0))
    assert np.median(err) < 1e-4 and np.mean(err < 1e-3) >= np.mean(baseline < 1e-3) - 0.05
    assert np.median(pinhole_err) > 1e-2


def test_lens_parameters_per_scene_and_config_validation():
    augs = data_config.get_config().augs
    augs.update(distortion_p=1.0, pp_shift=0.05)
    lenses = augment.sample_lens_params(np.random.default_rng(1), 3, augs)
    assert len({lens["distortion"] for lens in lenses}) == 1 and len({lens["pp_shift"] for lens in lenses}) == 3
    assert all(abs(c) <= 0.05 for lens in lenses for c in lens["pp_shift"])
    cfg = data_config.get_config("tiny")
    for key, value in (("blur_p", 1.5), ("k1", (0.2, -0.2)), ("pp_shift", 0.6), ("exposure_gamma", (0.0, 1.0))):
        bad = ml_collections.ConfigDict(cfg.to_dict())
        bad.augs[key] = value
        with pytest.raises(ValueError, match=key):
            data_config.validate(bad)
