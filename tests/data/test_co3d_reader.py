"""CO3Dv2: camera conversion against PyTorch3D's projection formulas, folder round trip, bad data named."""

from __future__ import annotations

import gzip
import json
import logging
import shutil

import numpy as np
import pytest

from vggt_jax.data.readers import co3d
from vggt_jax.data.sources import DataError, FileSceneSource
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import camera_centers, project_points, quat_to_mat


def _pytorch3d_screen(points, viewpoint, hw):
    """PyTorch3D ``PerspectiveCameras`` (NDC, isotropic) then NDC -> screen, written out from its documented
    formulas: X_cam = X_world @ R + T; x_ndc = f * X / Z + p; screen x = W / 2 - s * x_ndc with s = min(H, W) / 2
    (PyTorch3D's screen has the image corner at 0, pixel centres at i + 0.5)."""
    cam = points @ np.asarray(viewpoint["R"]) + np.asarray(viewpoint["T"])
    ndc = np.asarray(viewpoint["focal_length"]) * cam[:, :2] / cam[:, 2:] + np.asarray(viewpoint["principal_point"])
    h, w = hw
    s = min(h, w) / 2
    return np.array([w / 2, h / 2]) - s * ndc


def test_conversion_matches_pytorch3d_projection():
    rng = np.random.default_rng(0)
    hw = (90, 160)
    q = rng.normal(size=4)
    viewpoint = dict(
        R=quat_to_mat(q).tolist(),
        T=[0.1, -0.2, 4.0],
        focal_length=[1.8, 1.7],
        principal_point=[0.05, -0.1],
        intrinsics_format="ndc_isotropic",
    )
    ext, intr = co3d.co3d_to_opencv(viewpoint, hw)
    cam_centre = camera_centers(ext)
    points = cam_centre + (rng.normal(size=(50, 3)) * 0.5 + np.array([0, 0, 4.0])) @ ext[:, :3]
    uv, z = project_points(points, ext, intr)
    assert (z > 0).all()
    # Our pixel centres are at integers, PyTorch3D's at i + 0.5.
    np.testing.assert_allclose(uv + 0.5, _pytorch3d_screen(points, viewpoint, hw), atol=1e-9)
    back = co3d.opencv_to_co3d(ext, intr, hw)
    for key in ("R", "T", "focal_length", "principal_point"):
        np.testing.assert_allclose(back[key], viewpoint[key], atol=1e-12)
    # Legacy format: each axis spans [-1, 1]; rescaled per axis it is the same camera.
    legacy = dict(
        viewpoint,
        intrinsics_format="ndc_norm_image_bounds",
        focal_length=(np.array(viewpoint["focal_length"]) * 90 / np.array([160, 90])).tolist(),
        principal_point=(np.array(viewpoint["principal_point"]) * 90 / np.array([160, 90])).tolist(),
    )
    np.testing.assert_allclose(co3d.co3d_to_opencv(legacy, hw)[1], intr, atol=1e-9)


def test_depth_png_is_float16_bits(tmp_path):
    depth = np.array([[0.0, 1.5], [2.25, 1000.0]], np.float32)
    co3d.write_depth_png(tmp_path / "d.png", depth, scale_adjustment=2.0)
    from PIL import Image

    with Image.open(tmp_path / "d.png") as img:
        bits = np.asarray(img, dtype=np.uint16)
    np.testing.assert_array_equal(bits.view(np.float16), (depth / 2).astype(np.float16))
    np.testing.assert_array_equal(co3d.read_depth_png(tmp_path / "d.png", 2.0), depth)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("co3d")
    sequences = {}
    for k, seed in enumerate((21, 22)):
        v = SyntheticScene(seed=seed, num_frames=3, height=30, width=40, trajectory="orbit").render()
        masks = v["valid"].copy()
        masks[:, :5] = False  # the mask must win over valid depth
        sequences[f"seq_{k}"] = dict(
            images=np.round(v["images"] * 255).astype(np.uint8),
            extrinsics=v["extrinsics"],
            intrinsics=v["intrinsics"],
            depths=v["depths"],
            depth_masks=masks if k == 0 else None,
        )
    co3d.write_co3d_category(root, "apple", sequences, depth_scale=0.5)
    return root, sequences


def test_round_trip(dataset):
    root, sequences = dataset
    scenes = co3d.load_co3d(root)
    assert [s.name for s in scenes] == ["apple/seq_0", "apple/seq_1"]
    source = FileSceneSource(scenes)
    for index, seq in enumerate(sequences.values()):
        assert source.num_frames(index) == 3
        for i in range(3):
            frame = source.load_frame(index, i)
            np.testing.assert_array_equal(frame["image"], seq["images"][i])
            np.testing.assert_allclose(frame["extrinsic"], seq["extrinsics"][i], atol=1e-12)
            np.testing.assert_allclose(frame["intrinsic"], seq["intrinsics"][i], atol=1e-12)
            expected = seq["depths"][i].astype(np.float16).astype(np.float32)  # float16 storage
            if seq["depth_masks"] is not None:
                expected = np.where(seq["depth_masks"][i], expected, 0)
            np.testing.assert_allclose(frame["depth"], expected, rtol=1e-6)
    assert len(co3d.load_co3d(root, sequences={"seq_1"})) == 1
    assert co3d.load_co3d(root, min_frames=4) == []


def test_bad_data_is_named(dataset, tmp_path, caplog):
    root, _ = dataset
    frames = json.loads(gzip.open(root / "apple" / "frame_annotations.jgz", "rt").read())
    frames[1]["image"]["path"] = "apple/seq_0/images/missing.jpg"
    frames.append(dict(frames[0], sequence_name="seq_orphan"))
    broken = tmp_path / "broken"
    shutil.copytree(root / "apple", broken / "apple")
    with gzip.open(broken / "apple" / "frame_annotations.jgz", "wt") as f:
        json.dump(frames, f)
    with pytest.raises(DataError, match=r"scene 'apple/seq_0', frame 'missing.jpg': image file .* missing"):
        co3d.load_co3d(broken)
    with caplog.at_level(logging.WARNING):
        scenes = co3d.load_co3d(broken, on_error="skip")
    assert [len(s.frames) for s in scenes] == [2, 3]
    assert "scene 'apple/seq_orphan': has frames but is missing from sequence_annotations.jgz" in caplog.text
    # A depth file that disappears after indexing is reported when the frame is loaded.
    (broken / "apple" / "seq_1" / "depths" / "frame000002.jpg.geometric.png").unlink()
    with pytest.raises(DataError, match=r"scene 'apple/seq_1', frame 'frame000002.jpg': depth file .* missing"):
        FileSceneSource(scenes).load_frame(1, 1)
