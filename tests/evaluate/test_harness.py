"""The accuracy harness: ground-truth specs of every kind, saved predictions against them, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vggt_jax.data.readers.colmap import write_colmap_scene
from vggt_jax.evaluate.__main__ import gt_specs, main, seed_list
from vggt_jax.evaluate.ground_truth import load_ground_truth
from vggt_jax.evaluate.harness import evaluate_output
from vggt_jax.geometry import depth_to_world_points
from vggt_jax.inference.exports import write_predictions, write_trajectories
from vggt_jax.inference.preprocess import load_and_preprocess_images


def test_specs_and_seed_ranges():
    assert seed_list("0-2,7") == [0, 1, 2, 7]
    assert gt_specs("synthetic:3-4:2:72x96:turn:square") == [
        "synthetic:3:2:72x96:turn:square",
        "synthetic:4:2:72x96:turn:square",
    ]
    assert gt_specs("colmap:/a-b") == ["colmap:/a-b"]
    with pytest.raises(ValueError, match="unknown ground truth"):
        load_ground_truth("nerf:/x")


def test_synthetic_ground_truth_and_its_square_crop():
    full = load_ground_truth("synthetic:5:3:48x64:orbit")
    square = load_ground_truth("synthetic:5:3:48x64:orbit:square")
    assert full.images.shape == (3, 48, 64, 3) and square.images.shape == (3, 48, 48, 3)
    np.testing.assert_array_equal(square.images, full.images[:, :, 8:56])
    np.testing.assert_allclose(square.intrinsics[:, 0, 2], full.intrinsics[:, 0, 2] - 8)
    # The true track of a frame-0 pixel starts at that pixel, in the cropped frame's coordinates.
    tracks, visible = square.track_fn(0, np.array([[20.0, 30.0]]))
    np.testing.assert_allclose(tracks[0, 0], [20.0, 30.0], atol=1e-6)
    assert visible[0, 0]


def test_colmap_co3d_re10k_and_tum_ground_truth(tmp_path):
    gt = load_ground_truth("synthetic:6:3:30x40:random")
    write_colmap_scene(tmp_path / "scene", gt.images, gt.extrinsics, gt.intrinsics, gt.depth)
    colmap = load_ground_truth(f"colmap:{tmp_path / 'scene'}")
    np.testing.assert_allclose(colmap.extrinsics, gt.extrinsics, atol=1e-12)
    np.testing.assert_allclose(colmap.intrinsics, gt.intrinsics, atol=1e-12)
    np.testing.assert_array_equal(colmap.depth, gt.depth)
    # RealEstate10K: normalised intrinsics in COLMAP's pixel convention, camera-from-world rows.
    frames = tmp_path / "seq"
    frames.mkdir()
    lines = ["https://www.youtube.com/watch?v=x"]
    for i, (ext, k) in enumerate(zip(gt.extrinsics, gt.intrinsics, strict=True)):
        Image.fromarray(gt.images[i]).save(frames / f"{1000 * i}.png")
        norm = [k[0, 0] / 40, k[1, 1] / 30, (k[0, 2] + 0.5) / 40, (k[1, 2] + 0.5) / 30, 0, 0]
        lines.append(" ".join(str(v) for v in [1000 * i, *norm, *ext.reshape(-1)]))
    (tmp_path / "seq.txt").write_text("\n".join(lines) + "\n")
    re10k = load_ground_truth(f"re10k:{tmp_path / 'seq.txt'}")
    np.testing.assert_allclose(re10k.intrinsics, gt.intrinsics, atol=1e-9)
    np.testing.assert_allclose(re10k.extrinsics, gt.extrinsics, atol=1e-12)
    assert re10k.depth is None and re10k.names == ["0.png", "1000.png", "2000.png"]
    # CO3Dv2: one sequence of a category.
    from vggt_jax.data.readers.co3d import write_co3d_category

    seq = dict(images=gt.images, extrinsics=gt.extrinsics, intrinsics=gt.intrinsics, depths=gt.depth)
    write_co3d_category(tmp_path / "co3d", "apple", {"seq_a": seq})
    co3d = load_ground_truth(f"co3d:{tmp_path / 'co3d' / 'apple' / 'seq_a'}")
    assert co3d.name == "apple/seq_a" and co3d.images.shape == gt.images.shape
    np.testing.assert_allclose(co3d.extrinsics, gt.extrinsics, atol=1e-6)  # CO3D's float32-rounded viewpoints
    np.testing.assert_allclose(co3d.depth, gt.depth, rtol=1e-3)  # float16 depth PNGs
    write_trajectories(tmp_path / "traj", gt.extrinsics)
    tum = load_ground_truth(f"tum:{tmp_path / 'traj' / 'trajectory_tum.txt'}")
    np.testing.assert_allclose(tum.extrinsics, gt.extrinsics, atol=1e-12)
    assert tum.intrinsics is None


def test_saved_predictions_of_the_truth_score_perfectly(tmp_path):
    """An infer.py-like output that holds the ground truth itself (through the real preprocessing and its pixel
    warp) scores AUC 1 and no depth error; +BA columns appear when the npz has BA cameras."""
    gt = load_ground_truth("synthetic:7:3:60x80:orbit")
    images, metas = load_and_preprocess_images([Image.fromarray(im) for im in gt.images], "crop", target_size=56)
    k_model = np.stack([m.intrinsics_to_processed(k) for m, k in zip(metas, gt.intrinsics, strict=True)])
    # Depth at the model's pixels: the truth rendered there (nearest original pixel).
    from vggt_jax.evaluate.harness import gt_depth_in_model_pixels

    scale = np.array([m.scale_xy for m in metas])
    offset = np.array([m.offset_xy for m in metas])
    depth = gt_depth_in_model_pixels(gt.depth, scale, offset, images.shape[-2:]).astype(np.float32)
    half = gt.extrinsics.copy()
    half[:, :, 3] *= 0.5  # VGGT predicts up to scale: the truth at half its size
    arrays = dict(
        extrinsic=half,
        intrinsic=k_model,
        intrinsic_original=gt.intrinsics,
        depth=depth * 0.5,
        depth_conf=np.ones_like(depth),
        world_points_from_depth=depth_to_world_points(depth.astype(np.float64) * 0.5, half, k_model),
        scale_xy=scale,
        offset_xy=offset,
    )
    write_predictions(tmp_path / "ff", dict(arrays, images=images))
    columns = evaluate_output(tmp_path / "ff", gt)
    ff = columns["feed-forward"]
    assert list(columns) == ["feed-forward"]
    assert ff["auc30"] == 1.0 and ff["ate"] < 1e-9 and ff["focal_err_median"] < 1e-12
    assert ff["depth_abs_rel"] < 1e-6 and ff["depth_delta1.25"] == 1.0
    assert ff["accuracy"] < 0.05  # nearest-pixel depth at the model's coarser pixels vs the full-resolution cloud
    moved = half.copy()
    moved[1, :, 3] += 0.3
    write_predictions(
        tmp_path / "ba", dict(arrays, images=images, ba_extrinsic=moved, ba_intrinsic_original=gt.intrinsics)
    )
    columns = evaluate_output(tmp_path / "ba", gt)
    assert columns["+BA"]["auc30"] < 1.0 and columns["feed-forward"]["auc30"] == 1.0


def test_model_free_cli(tmp_path, capsys):
    assert main(["model-free", "--seeds", "0", "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| seed |") and "| 0 |" in table
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    assert row["after"]["rot_err_median"] < row["before"]["rot_err_median"] and row["outliers_kept"] == 0
    assert main(["output", str(tmp_path / "missing"), "--gt", "synthetic:0:2"]) == 2  # an error line, exit 2
