"""Unprojection, projection and rigid inverses against geometry.npz and by invariants (multinerf style)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.geometry import (
    camera_centers,
    closed_form_inverse_se3,
    depth_to_world_points,
    intrinsics_to_corner_convention,
    look_at,
    opencv_to_opengl_cam_to_world,
    pixel_grid,
    pixel_rays,
    project_points,
    quat_to_mat,
    transform_points,
    unproject_depth_map_to_point_map,
    warp_intrinsics,
    world_to_cam_points,
)


def random_scene(s: int = 3, h: int = 20, w: int = 28, seed: int = 0):
    rng = np.random.default_rng(seed)
    extrinsics = np.concatenate([quat_to_mat(rng.standard_normal((s, 4))), rng.normal(0, 1, (s, 3, 1))], axis=-1)
    intrinsics = np.tile(np.eye(3), (s, 1, 1))
    intrinsics[:, 0, 0], intrinsics[:, 1, 1] = rng.uniform(20, 40, s), rng.uniform(20, 40, s)
    intrinsics[:, 0, 2], intrinsics[:, 1, 2] = w / 2 + rng.uniform(-2, 2, s), h / 2 + rng.uniform(-2, 2, s)
    depth = rng.uniform(0.5, 5.0, (s, h, w))
    return depth, extrinsics, intrinsics


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_unproject_fixture(geo, backend):
    """Upstream rounds camera-frame points to float32 before the float64 rigid transform; reproduced by default.
    Measured max abs error: numpy 4.4e-16 (BLAS summation order of the 3x3 product), jax 0. Points are O(10)."""
    args = [geo[k] for k in ("unproj__depth_map", "unproj__extrinsics", "unproj__intrinsics")]
    with jax.enable_x64(True):
        if backend == "numpy":
            points = unproject_depth_map_to_point_map(*args)
        else:
            fn = jax.jit(lambda d, e, k: unproject_depth_map_to_point_map(d, e, k, xnp=jnp))
            points = fn(*(jnp.asarray(a) for a in args))
        assert points.dtype == np.float64 and points.shape == (3, 20, 28, 3)
        np.testing.assert_allclose(points, geo["unproj__world_points"], rtol=0, atol=2e-15)
    exact = unproject_depth_map_to_point_map(*args, round_cam_points_to_float32=False)
    # Without the float32 rounding the difference is float32-sized, proving the flag is what the fixture needs.
    assert 1e-8 < np.abs(exact - geo["unproj__world_points"]).max() < 1e-5


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_inverse_fixture(geo, backend):
    """Measured: 0 against torch's float64 and float32 results (numpy's own path on the fixture machine's BLAS
    differs from torch by <= 4.5e-16, so that array is compared at the same 1e-15)."""
    with jax.enable_x64(True):
        xnp = np if backend == "numpy" else jnp
        inverse = lambda x: closed_form_inverse_se3(xnp.asarray(x), xnp=xnp)
        np.testing.assert_allclose(inverse(geo["inv__se3_4x4"]), geo["inv__out_4x4"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(inverse(geo["inv__se3_3x4"]), geo["inv__out_3x4"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(inverse(geo["inv__se3_4x4"]), geo["inv__out_4x4_numpy_path"], rtol=0, atol=1e-15)
        out32 = inverse(geo["inv__se3_4x4_f32"])
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out32, geo["inv__out_4x4_f32"], rtol=0, atol=1e-6)


def test_inverse_composes_to_identity():
    _, extrinsics, _ = random_scene(8)
    inverse = closed_form_inverse_se3(extrinsics)
    square = np.concatenate([extrinsics, np.broadcast_to([[[0, 0, 0, 1.0]]], (8, 1, 4))], axis=1)
    np.testing.assert_allclose(inverse @ square, np.broadcast_to(np.eye(4), (8, 4, 4)), atol=1e-14)
    np.testing.assert_allclose(closed_form_inverse_se3(inverse), square, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_project_unproject_round_trip(backend):
    """project(unproject(d)) == (pixel grid, d): the two functions share one pixel convention."""
    depth, extrinsics, intrinsics = random_scene()
    with jax.enable_x64(True):
        xnp = np if backend == "numpy" else jnp
        points = depth_to_world_points(xnp.asarray(depth), xnp.asarray(extrinsics), xnp.asarray(intrinsics), xnp=xnp)
        xy, z = project_points(points, xnp.asarray(extrinsics), xnp.asarray(intrinsics), xnp=xnp)
    u, v = pixel_grid(20, 28)
    np.testing.assert_allclose(xy[..., 0], np.broadcast_to(u, (3, 20, 28)), atol=1e-12)
    np.testing.assert_allclose(xy[..., 1], np.broadcast_to(v, (3, 20, 28)), atol=1e-12)
    np.testing.assert_allclose(z, depth, rtol=1e-13)


def test_project_float32_jax_highest_precision():
    """float32 jax (no x64): HIGHEST-precision products keep pixels within ~1e-4 px of the float64 answer."""
    depth, extrinsics, intrinsics = random_scene(seed=3)
    points = depth_to_world_points(depth, extrinsics, intrinsics)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    xy, _ = jax.jit(lambda p, e, k: project_points(p, e, k, xnp=jnp))(f32(points), f32(extrinsics), f32(intrinsics))
    assert xy.dtype == jnp.float32
    u, v = pixel_grid(20, 28)
    assert np.abs(np.asarray(xy) - np.stack([u, v], -1)).max() < 1e-3


def test_sparse_points_and_depth_shape():
    depth, extrinsics, intrinsics = random_scene()
    points = depth_to_world_points(depth[..., None], extrinsics, intrinsics)  # [S, H, W, 1] is accepted
    sparse = points.reshape(3, -1, 3)[:, ::7]
    xy, z = project_points(sparse, extrinsics, intrinsics)
    assert xy.shape == (3, sparse.shape[1], 2) and z.shape == (3, sparse.shape[1])
    np.testing.assert_allclose(z, depth.reshape(3, -1)[:, ::7], rtol=1e-13)


def test_warp_intrinsics_follows_resized_pixels():
    """A pixel centre moved by a resize (corner-anchored, as PIL) and a shift lands where the warped camera puts it,
    and the inverse warp undoes it."""
    depth, extrinsics, intrinsics = random_scene()
    points = depth_to_world_points(depth, extrinsics, intrinsics)
    scale, offset = (0.81, 1.7), (-3.0, 12.5)
    warped = warp_intrinsics(intrinsics, scale, offset)
    xy, _ = project_points(points, extrinsics, warped)
    u, v = (np.broadcast_to(a, (3, 20, 28)) for a in pixel_grid(20, 28))
    np.testing.assert_allclose(xy[..., 0], scale[0] * (u + 0.5) + offset[0] - 0.5, atol=1e-12)
    np.testing.assert_allclose(xy[..., 1], scale[1] * (v + 0.5) + offset[1] - 0.5, atol=1e-12)
    inverse = (1 / scale[0], 1 / scale[1]), (-offset[0] / scale[0], -offset[1] / scale[1])
    np.testing.assert_allclose(warp_intrinsics(warped, *inverse), intrinsics, atol=1e-12)


def test_corner_convention_and_opengl_axes():
    depth, extrinsics, intrinsics = random_scene()
    points = depth_to_world_points(depth, extrinsics, intrinsics)
    xy, _ = project_points(points, extrinsics, intrinsics_to_corner_convention(intrinsics))
    u, v = (np.broadcast_to(a, (3, 20, 28)) for a in pixel_grid(20, 28))
    np.testing.assert_allclose(xy, np.stack([u, v], -1) + 0.5, atol=1e-12)
    # OpenGL camera-to-world: the point in front of the camera has negative z in the OpenGL camera frame.
    c2w_gl = opencv_to_opengl_cam_to_world(closed_form_inverse_se3(extrinsics))
    w2c_gl = closed_form_inverse_se3(c2w_gl)
    cam_gl = np.einsum("sij,shwj->shwi", w2c_gl[:, :3, :3], points) + w2c_gl[:, None, None, :3, 3]
    np.testing.assert_allclose(-cam_gl[..., 2], depth, rtol=1e-12)
    fx, cx = intrinsics[:, 0, 0, None, None], intrinsics[:, 0, 2, None, None]
    fy, cy = intrinsics[:, 1, 1, None, None], intrinsics[:, 1, 2, None, None]
    np.testing.assert_allclose(fx * cam_gl[..., 0] / -cam_gl[..., 2] + cx, u, atol=1e-11)
    np.testing.assert_allclose(cy - fy * cam_gl[..., 1] / -cam_gl[..., 2], v, atol=1e-11)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_pixel_rays_unproject_what_project_points_projects(backend):
    """Depth times the ray of a pixel projects back onto that pixel, at that depth (skew included)."""
    depth, extrinsics, intrinsics = random_scene()
    intrinsics = intrinsics[0] + np.array([[0, 0.7, 0], [0, 0, 0], [0, 0, 0]])
    with jax.enable_x64(True):
        xnp = np if backend == "numpy" else jnp
        u, v = pixel_grid(20, 28, xnp)
        cam = pixel_rays(u, v, xnp.asarray(intrinsics), xnp) * xnp.asarray(depth[0])[..., None]
        cam_to_world = xnp.asarray(closed_form_inverse_se3(extrinsics[0]))
        world = transform_points(cam, cam_to_world[:3, :3], cam_to_world[:3, 3], xnp)
        xy, z = project_points(world, xnp.asarray(extrinsics[0]), xnp.asarray(intrinsics), xnp)
    np.testing.assert_allclose(cam[..., 2], depth[0], rtol=0, atol=0)
    np.testing.assert_allclose(xy, np.stack([u, v], -1), atol=1e-11)
    np.testing.assert_allclose(z, depth[0], rtol=1e-13)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_transform_points_and_camera_centers(backend):
    _, extrinsics, _ = random_scene(4)
    points = np.random.default_rng(1).normal(size=(4, 10, 3))
    with jax.enable_x64(True):
        xnp = np if backend == "numpy" else jnp
        for s in range(4):
            rotation, translation = xnp.asarray(extrinsics[s, :, :3]), xnp.asarray(extrinsics[s, :, 3])
            cam = transform_points(xnp.asarray(points[s]), rotation, translation, xnp)
            np.testing.assert_allclose(cam, world_to_cam_points(points[s], extrinsics[s]), atol=1e-14)
        centres = camera_centers(xnp.asarray(extrinsics), xnp)
    # A camera's centre maps to its own origin.
    origin = np.einsum("sij,sj->si", extrinsics[:, :, :3], centres) + extrinsics[:, :, 3]
    np.testing.assert_allclose(origin, 0, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_look_at_centres_the_target(backend):
    eye, target, up = np.array([2.0, -1.0, 1.5]), np.array([0.1, 0.3, 0.4]), np.array([0.0, 0.0, 1.0])
    with jax.enable_x64(True):
        xnp = np if backend == "numpy" else jnp
        extrinsic = np.asarray(look_at(*(xnp.asarray(a) for a in (eye, target, up)), roll=0.3, xnp=xnp))
    np.testing.assert_allclose(extrinsic[:, :3] @ extrinsic[:, :3].T, np.eye(3), atol=1e-15)
    assert np.linalg.det(extrinsic[:, :3]) > 0
    np.testing.assert_allclose(camera_centers(extrinsic), eye, atol=1e-15)
    # The target lies on the optical axis at its distance; without roll, world up points to image -y.
    cam = world_to_cam_points(target, extrinsic)
    np.testing.assert_allclose(cam, [0, 0, np.linalg.norm(target - eye)], atol=1e-15)
    upright = look_at(eye, target, up)
    assert (upright[:, :3] @ up)[1] < 0 and abs((upright[:, :3] @ up)[0]) < 1e-15
