"""MegaDepth v1: dense<k> folders (HDF5 depth, undistorted COLMAP model) read back exactly, bad data named."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pycolmap
import pytest

from vggt_jax.data.readers import megadepth
from vggt_jax.data.sources import DataError, FileSceneSource, check_frame
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import project_points


@pytest.fixture(scope="module")
def truth():
    v = SyntheticScene(seed=41, num_frames=3, height=30, width=40, trajectory="random").render()
    v["images_u8"] = np.round(v["images"] * 255).astype(np.uint8)
    v["depths"][:, -3:, :] = 0.0  # MegaDepth's filtered-out (invalid) depth
    return v


def _write(root, truth, binary=True):
    return megadepth.write_megadepth_scene(
        root, "0001", truth["images_u8"], truth["extrinsics"], truth["intrinsics"], truth["depths"], binary=binary
    )


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip(tmp_path, truth, binary):
    folder = _write(tmp_path / "MegaDepth_v1", truth, binary)
    assert sorted(p.name for p in (folder / "depths").iterdir()) == ["000000.h5", "000001.h5", "000002.h5"]
    with h5py.File(folder / "depths" / "000000.h5", "r") as f:
        assert f["depth"].dtype == np.float32 and f["depth"].shape == (30, 40)
    # The model is COLMAP's, PINHOLE, principal point in COLMAP's pixel convention (ours + 0.5).
    cam = pycolmap.Reconstruction(str(folder / "sparse")).cameras[1]
    assert cam.model_name == "PINHOLE"
    np.testing.assert_allclose(cam.params[2:], truth["intrinsics"][0][:2, 2] + 0.5, atol=1e-12)
    scenes = megadepth.load_megadepth(tmp_path / "MegaDepth_v1")
    assert [s.name for s in scenes] == ["0001/dense0"]
    assert [f.name for f in scenes[0].frames] == ["000000.jpg", "000001.jpg", "000002.jpg"]
    source = FileSceneSource(scenes)
    points = truth["world_points"][0][truth["depths"][0] > 0][::5].astype(np.float64)
    for i in range(3):
        frame = check_frame(source.load_frame(0, i), "0001/dense0")
        np.testing.assert_array_equal(frame["image"], truth["images_u8"][i])
        np.testing.assert_array_equal(frame["depth"], truth["depths"][i])  # float32 HDF5: exact
        assert frame["has_depth"] and (frame["depth"][-3:] == 0).all()
        # Quaternion round trip of the rotation: float64 round-off.
        np.testing.assert_allclose(frame["extrinsic"], truth["extrinsics"][i], atol=1e-12)
        np.testing.assert_allclose(frame["intrinsic"], truth["intrinsics"][i], atol=1e-12)
        got, _ = project_points(points, frame["extrinsic"], frame["intrinsic"])
        want, _ = project_points(points, truth["extrinsics"][i], truth["intrinsics"][i])
        np.testing.assert_allclose(got, want, atol=1e-9)
    # One <scene> folder, or one dense<k> folder, reads the same.
    assert [s.name for s in megadepth.load_megadepth(folder.parent)] == ["0001/dense0"]
    assert [f.image_path for f in megadepth.load_megadepth(folder)[0].frames] == [
        f.image_path for f in scenes[0].frames
    ]


def test_bad_data_is_named(tmp_path, truth, caplog):
    folder = _write(tmp_path, truth)
    (folder / "depths" / "000001.h5").unlink()
    with pytest.raises(DataError, match=r"scene '0001/dense0', frame '000001.jpg': depth file .* missing"):
        megadepth.load_megadepth(tmp_path)
    with caplog.at_level(logging.WARNING):
        (record,) = megadepth.load_megadepth(tmp_path, on_error="skip")
    assert [f.name for f in record.frames] == ["000000.jpg", "000002.jpg"]
    assert "frame '000001.jpg': depth file" in caplog.text
    # An HDF5 file without the "depth" dataset, and a depth map of the wrong size, are reported when loaded.
    with h5py.File(folder / "depths" / "000000.h5", "w") as f:
        f.create_dataset("dept", data=truth["depths"][0])
    with h5py.File(folder / "depths" / "000002.h5", "w") as f:
        f.create_dataset("depth", data=truth["depths"][2][:20])
    source = FileSceneSource([record])
    with pytest.raises(DataError, match=r"scene '0001/dense0', frame '000000.jpg': depth file .* \(no dataset 'depth'"):
        source.load_frame(0, 0)
    with pytest.raises(
        DataError, match=r"frame '000002.jpg': depth map is 40x20 but the layout's depth maps are 40x30"
    ):
        source.load_frame(0, 1)
    (folder / "sparse" / "cameras.bin").write_bytes(b"\x00")
    with pytest.raises(DataError, match=r"scene '0001/dense0': cannot read the COLMAP model"):
        megadepth.load_megadepth(tmp_path)
    assert megadepth.load_megadepth(tmp_path, on_error="skip") == []
