"""COLMAP and transforms.json exports, read back with their users' tools: points land on their source pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vggt_jax.inference.exports import ExportError, select_points, write_colmap, write_transforms_json

# The exported values are float64 all the way (text: shortest round-trip repr), so reprojection is exact up to
# rounding: measured 4.3e-14 px (bin and txt); 1e-9 px leaves room for other BLAS/libm.
PIXEL_ATOL = 1e-9


@pytest.fixture(scope="module")
def points(export_scene):
    masks = np.stack([m.content_mask() for m in export_scene.metas])
    return select_points(
        export_scene.world_points, export_scene.conf, export_scene.images, mask=masks, conf_percentile=20
    )


def expected_colmap_xy(export_scene, points):
    """COLMAP's pixel centres are at +0.5 of VGGT's grid; the source pixel, mapped to the original image."""
    return points.gather(export_scene.pixels_xy) + 0.5


@pytest.mark.parametrize("fmt", ["bin", "txt"])
@pytest.mark.parametrize("with_pixels", [True, False])
def test_colmap_model_reprojects_onto_source_pixels(tmp_path, export_scene, points, fmt, with_pixels):
    import pycolmap

    written = write_colmap(
        tmp_path,
        points,
        export_scene.extrinsics,
        export_scene.intrinsics_original,
        export_scene.original_hw,
        export_scene.names,
        pixels_xy=export_scene.pixels_xy if with_pixels else None,
        fmt=fmt,
    )
    assert sorted(p.name for p in written) == sorted(
        f"{n}.{fmt}" for n in ("cameras", "images", "points3D", "rigs", "frames")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)  # no temp files left

    model = pycolmap.Reconstruction(str(tmp_path))
    assert model.num_images() == len(export_scene.names) and model.num_points3D() == len(points)
    expected = expected_colmap_xy(export_scene, points)
    for k, name in enumerate(export_scene.names):
        image = model.find_image_with_name(name)
        camera = model.cameras[image.camera_id]
        assert camera.model_name == "PINHOLE"
        assert (camera.height, camera.width) == tuple(export_scene.original_hw[k])
        np.testing.assert_allclose(image.cam_from_world().matrix(), export_scene.extrinsics[k], atol=1e-14)
        ours = points.frame == k
        xyz = points.xyz[ours]
        projected = np.array([image.project_point(p) for p in xyz])
        np.testing.assert_allclose(projected, expected[ours], rtol=0, atol=PIXEL_ATOL)
        # The stored observations are those pixels too, and point back at the right 3D points.
        observed = np.array([p.xy for p in image.points2D])
        np.testing.assert_allclose(observed, expected[ours], rtol=0, atol=PIXEL_ATOL)
        ids = np.array([p.point3D_id for p in image.points2D])
        np.testing.assert_allclose(np.array([model.points3D[i].xyz for i in ids]), xyz, rtol=0, atol=0)
    point = model.points3D[1]
    assert point.track.length() == 1 and tuple(point.color) == tuple(points.rgb[0])


def test_colmap_rejects_bad_input_without_writing(tmp_path, export_scene, points):
    args = (points, export_scene.extrinsics, export_scene.intrinsics_original, export_scene.original_hw)
    with pytest.raises(ExportError, match="unique"):
        write_colmap(tmp_path, *args, ["a.png", "a.png", "b.png"])
    with pytest.raises(ExportError, match="whitespace"):
        write_colmap(tmp_path, *args, ["a b.png", "c.png", "d.png"], fmt="txt")
    with pytest.raises(ExportError, match=r"intrinsics must have shape \[3, 3, 3\]"):
        write_colmap(
            tmp_path,
            points,
            export_scene.extrinsics,
            export_scene.intrinsics_original[:2],
            export_scene.original_hw,
            export_scene.names,
        )
    assert list(tmp_path.iterdir()) == []


def test_transforms_json_reprojects_in_opengl_convention(tmp_path, export_scene, points):
    paths = [f"images/{n}" for n in export_scene.names]
    write_transforms_json(
        tmp_path,
        export_scene.extrinsics,
        export_scene.intrinsics_original,
        export_scene.original_hw,
        paths,
        ply_file_path="points.ply",
    )
    content = json.loads((tmp_path / "transforms.json").read_text())
    assert content["camera_model"] == "OPENCV" and content["ply_file_path"] == "points.ply"
    expected = expected_colmap_xy(export_scene, points)  # nerfstudio also casts rays through pixel centres at +0.5
    for k, frame in enumerate(content["frames"]):
        assert frame["file_path"] == paths[k] and (frame["h"], frame["w"]) == tuple(export_scene.original_hw[k])
        cam_to_world = np.array(frame["transform_matrix"])
        np.testing.assert_allclose(cam_to_world[3], [0, 0, 0, 1])
        world_to_cam = np.linalg.inv(cam_to_world)
        ours = points.frame == k
        cam = points.xyz[ours] @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
        assert np.all(cam[:, 2] < 0)  # OpenGL: the camera looks down -z
        # nerfstudio's ray for pixel (u, v): ((u - cx) / fl_x, -(v - cy) / fl_y, -1) in camera axes.
        u = frame["cx"] + frame["fl_x"] * cam[:, 0] / -cam[:, 2]
        v = frame["cy"] - frame["fl_y"] * cam[:, 1] / -cam[:, 2]
        np.testing.assert_allclose(np.stack([u, v], -1), expected[ours], rtol=0, atol=PIXEL_ATOL)
