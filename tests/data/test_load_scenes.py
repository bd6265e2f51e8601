"""The layout registry: every layout is dispatched to its reader, short scenes dropped, unknown kinds named."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from vggt_jax.data.readers import LAYOUTS, co3d, colmap, folder, load_scenes, megadepth, replica, scannet
from vggt_jax.data.sources import DataError, FileSceneSource
from vggt_jax.data.synthetic import SyntheticScene


@pytest.fixture(scope="module")
def views():
    v = SyntheticScene(seed=71, num_frames=3, height=30, width=40, trajectory="orbit").render()
    v["images_u8"] = np.round(v["images"] * 255).astype(np.uint8)
    return v


def test_layout_names():
    assert sorted(LAYOUTS) == sorted(["colmap", "co3d", "scannet", "megadepth", "replica", "folder", "batch"])
    with pytest.raises(
        ValueError, match=r"unknown scene layout 'scannet\+\+'; the layouts are \['batch', 'co3d', 'colmap'"
    ):
        load_scenes("scannet++", "/nowhere")


def test_every_layout_dispatches(tmp_path, views):
    img, ext, intr, depth = views["images_u8"], views["extrinsics"], views["intrinsics"], views["depths"]
    colmap.write_colmap_scene(tmp_path / "colmap" / "a", img, ext, intr, depth)
    colmap.write_colmap_scene(tmp_path / "colmap" / "b", img[:1], ext[:1], intr[:1])
    co3d.write_co3d_category(
        tmp_path / "co3d", "apple", dict(s0=dict(images=img, extrinsics=ext, intrinsics=intr, depths=depth))
    )
    scannet.write_scannet_scene(tmp_path / "scannet" / "scans" / "scene0001_00", img, depth, ext, intr[0], intr[0])
    megadepth.write_megadepth_scene(tmp_path / "megadepth", "0042", img, ext, intr, depth)
    # Depth beyond 10 m here: a coarser PNG scale than NICE-SLAM's (kept in cam_params.json).
    replica.write_replica_scene(tmp_path / "replica" / "office0", img, depth, ext, intr[0], png_depth_scale=5000.0)
    folder.write_folder_scene(tmp_path / "folder" / "mine", img, ext, intr, depth)
    expected = dict(
        colmap=(dict(), ["a"]),
        co3d=(dict(categories=["apple"]), ["apple/s0"]),
        scannet=(dict(depth_size=(30, 40), color_size=(30, 40), stride=1), ["scene0001_00"]),
        megadepth=(dict(), ["0042/dense0"]),
        replica=(dict(stride=1), ["office0"]),
        folder=(dict(), ["mine"]),
    )
    for kind, (options, names) in expected.items():
        scenes = load_scenes(kind, str(tmp_path / kind), **options)
        assert [s.name for s in scenes] == names, kind
        frame = FileSceneSource(scenes).load_frame(0, 2)
        np.testing.assert_array_equal(frame["image"], img[2], err_msg=kind)
        # Text poses: ScanNet's "%f" is the coarsest (6 decimals).
        np.testing.assert_allclose(frame["extrinsic"], ext[2], atol=1e-5, err_msg=kind)
        assert frame["has_depth"], kind
    # min_frames drops the one-frame COLMAP scene b, and logs it; a scene folder itself also works.
    assert [s.name for s in load_scenes("colmap", str(tmp_path / "colmap"), min_frames=1)] == ["a", "b"]
    assert [s.name for s in load_scenes("colmap", str(tmp_path / "colmap" / "b"), min_frames=1)] == ["b"]


def test_on_error(tmp_path, views, caplog):
    folder.write_folder_scene(tmp_path / "mine", views["images_u8"], views["extrinsics"], views["intrinsics"])
    (tmp_path / "mine" / "poses" / "0001.txt").write_text("not a pose")
    with caplog.at_level(logging.WARNING):
        (scene,) = load_scenes("folder", str(tmp_path))
    assert [f.name for f in scene.frames] == ["0000.png", "0002.png"]
    assert "scene 'mine', frame '0001.png': pose file" in caplog.text
    with pytest.raises(DataError, match=r"scene 'mine', frame '0001.png'"):
        load_scenes("folder", str(tmp_path), on_error="raise")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_scenes("folder", str(tmp_path), min_frames=3) == []
    assert "scene 'mine': 2 usable frames, fewer than min_frames=3" in caplog.text
