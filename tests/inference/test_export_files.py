"""Point clouds (PLY, GLB), depth PNGs, previews, tracks and predictions.npz, read back as their users read them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vggt_jax.inference.exports import (
    ExportError,
    commit_files,
    load_predictions,
    read_depth_png,
    select_points,
    write_depth_maps,
    write_glb,
    write_ply,
    write_predictions,
    write_preview,
    write_tracks,
)


@pytest.fixture(scope="module")
def points(export_scene):
    return select_points(export_scene.world_points, export_scene.conf, export_scene.images)


def test_select_points_filters_like_upstream(export_scene):
    """Upstream's demos keep conf >= percentile(conf, p) and conf > 1e-5, over all frames at once."""
    conf = export_scene.conf.copy()
    conf[0, 0, 0] = np.nan
    selection = select_points(export_scene.world_points, conf, export_scene.images, conf_percentile=50)
    finite = conf[np.isfinite(conf)]
    assert len(selection) == np.count_nonzero(finite >= np.percentile(finite, 50))
    np.testing.assert_array_equal(
        selection.xyz, export_scene.world_points[selection.frame, selection.row, selection.col]
    )
    expected_rgb = np.round(export_scene.images.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(selection.rgb, expected_rgb[selection.frame, selection.row, selection.col])
    capped = select_points(export_scene.world_points, export_scene.conf, export_scene.images, max_points=100)
    assert len(capped) == 100
    with pytest.raises(ExportError, match="no point passes"):
        select_points(
            export_scene.world_points,
            export_scene.conf,
            export_scene.images,
            mask=np.zeros(export_scene.conf.shape, bool),
        )


def test_ply_reads_back_with_trimesh(tmp_path, points):
    trimesh = pytest.importorskip("trimesh")
    path = write_ply(tmp_path, points)
    cloud = trimesh.load(path)
    assert isinstance(cloud, trimesh.PointCloud)
    np.testing.assert_allclose(cloud.vertices, points.xyz, rtol=1e-7, atol=1e-7)  # stored as float32
    np.testing.assert_array_equal(cloud.colors[:, :3], points.rgb)


def test_glb_reads_back_with_trimesh(tmp_path, export_scene, points):
    trimesh = pytest.importorskip("trimesh")
    path = write_glb(
        tmp_path, points, export_scene.extrinsics, export_scene.intrinsics_original, export_scene.original_hw
    )
    loaded = trimesh.load(path, file_type="glb")
    assert set(loaded.geometry) == {"points", "camera_000", "camera_001", "camera_002"}
    flip = np.diag([1.0, -1.0, -1.0])  # glTF is y-up: rotated 180 degrees about x
    np.testing.assert_allclose(loaded.geometry["points"].vertices, points.xyz @ flip, atol=1e-6)
    np.testing.assert_array_equal(loaded.geometry["points"].colors[:, :3], points.rgb)
    for k in range(3):
        rotation, translation = export_scene.extrinsics[k, :, :3], export_scene.extrinsics[k, :, 3]
        centre = -rotation.T @ translation
        vertices = loaded.geometry[f"camera_{k:03d}"].vertices
        np.testing.assert_allclose(vertices[0], centre @ flip, atol=1e-6)  # the apex is the camera centre
        # The other corners lie in front of the camera (OpenCV z > 0 before the flip).
        assert np.all(((vertices[1:] @ flip) - centre) @ rotation[2] > 0)


def test_depth_png_round_trip(tmp_path, export_scene):
    pytest.importorskip("matplotlib")  # the colour previews
    depth = export_scene.depth.copy()
    depth[0, :3, :3] = 0.0  # no depth there
    written = write_depth_maps(tmp_path, depth[..., None], export_scene.names, conf=export_scene.conf)
    assert len(written) == 3 * 3 + 1
    sidecar = json.loads((tmp_path / "depth" / "depth_scale.json").read_text())
    unit = sidecar["unit"]
    for k, name in enumerate(export_scene.names):
        stem = name.rsplit(".", 1)[0]
        with Image.open(tmp_path / "depth" / f"{stem}.png") as img:
            assert img.mode.startswith("I;16")
        decoded = read_depth_png(tmp_path / "depth" / sidecar["files"][stem], unit)
        valid = depth[k] > 0
        np.testing.assert_array_equal(np.isnan(decoded), ~valid)
        assert np.abs(decoded[valid] - depth[k][valid]).max() <= unit / 2 + 1e-12  # rounding to the nearest count
        for folder in ("depth_preview", "confidence"):
            with Image.open(tmp_path / folder / f"{stem}.png") as img:
                assert img.mode == "RGB" and img.size == depth.shape[2:0:-1]


def test_preview_png(tmp_path, export_scene, points):
    pytest.importorskip("matplotlib")
    path = write_preview(
        tmp_path, points, export_scene.extrinsics, export_scene.intrinsics_original, export_scene.original_hw
    )
    with Image.open(path) as img:
        assert img.size == (960, 720)
        assert np.asarray(img.convert("L")).std() > 1  # something was drawn


def test_tracks_npz_and_overlay(tmp_path, export_scene):
    rng = np.random.default_rng(0)
    tracks = rng.uniform(0, 55, (3, 7, 2)).astype(np.float32)
    vis, conf = rng.uniform(0, 1, (3, 7)), rng.uniform(0, 1, (3, 7))
    write_tracks(tmp_path, tracks, export_scene.names, vis=vis, conf=conf, frames=export_scene.images)
    with np.load(tmp_path / "tracks.npz") as f:  # no pickle needed
        np.testing.assert_array_equal(f["tracks"], tracks)
        np.testing.assert_allclose(f["vis"], vis, rtol=1e-7)
        assert list(f["image_names"]) == export_scene.names and str(f["coordinates"]) == "processed"
    with Image.open(tmp_path / "tracks_overlay.png") as img:
        assert img.size == (3 * 320, 320)


def test_predictions_npz_round_trip_and_checks(tmp_path, export_scene):
    predictions = {
        "images": export_scene.images,
        "extrinsic": export_scene.extrinsics,
        "intrinsic": export_scene.intrinsics,
        "depth": export_scene.depth,  # the predictor's [S, H, W]; upstream's [S, H, W, 1] is accepted too
        "depth_conf": export_scene.conf,
        "world_points": export_scene.world_points,
        "image_names": np.array(export_scene.names),
        "original_hw": export_scene.original_hw,
        "my_extra": np.arange(3),
    }
    loaded = load_predictions(write_predictions(tmp_path, predictions))
    assert set(loaded) == set(predictions)
    for key, value in predictions.items():
        np.testing.assert_array_equal(loaded[key], value)
    bad = dict(predictions, depth=export_scene.depth[..., None, None], world_points=export_scene.world_points[:2])
    bad["names"] = np.array([object()])
    with pytest.raises(ExportError) as info:
        write_predictions(tmp_path / "bad", bad)
    message = str(info.value)
    assert (
        "depth: expected [S, H, W] or [S, H, W, 1]" in message
        and "world_points: S = 2" in message
        and "pickle" in message
    )
    assert not (tmp_path / "bad").exists()


def test_commit_files_leaves_nothing_partial(tmp_path):
    (tmp_path / "keep.txt").write_bytes(b"old")

    def explode(f):
        f.write(b"half of a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        commit_files(tmp_path, {"keep.txt": b"new", "a.bin": b"x" * 10, "b.npz": explode})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert (tmp_path / "keep.txt").read_bytes() == b"old"
    commit_files(tmp_path, {"sub/c.bin": lambda f: f.write(b"ok")})
    assert (tmp_path / "sub" / "c.bin").read_bytes() == b"ok"
