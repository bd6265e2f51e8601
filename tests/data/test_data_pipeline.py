"""The grain pipeline: batch contract, transforms replayed by hand, determinism, checkpoints, shards, bad data."""

from __future__ import annotations

import json
import logging

import grain
import numpy as np
import pytest

from vggt_jax.data import augment, pipeline, transforms
from vggt_jax.data import config as data_config
from vggt_jax.data.sources import DataError
from vggt_jax.data.synthetic import SyntheticSource
from vggt_jax.data.tracks import build_tracks
from vggt_jax.geometry import pixel_grid, project_points, transform_points

KEYS = {
    "images": np.float32,
    "extrinsics": np.float32,
    "intrinsics": np.float32,
    "depths": np.float32,
    "world_points": np.float32,
    "point_masks": np.bool_,
    "tracks": np.float32,
    "track_vis": np.bool_,
    "frame_mask": np.bool_,
    "scale": np.float32,
    "scene_ids": np.int32,
    "frame_ids": np.int32,
    "distortion": np.float32,
    "source_ids": np.int32,
}


def _config(**overrides):
    cfg = data_config.get_config("tiny")
    cfg.img_size, cfg.aspect_ratios, cfg.num_frames, cfg.frame_buckets = 56, (0.5, 1.0), (2, 5), (2, 3, 5)
    cfg.max_images_per_batch, cfg.num_tracks = 6, 16
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(num_scenes=8, num_frames=6, height=48, width=64, seed=0)


def _iterator(cfg, source, seed=0, process_index=0, process_count=1):
    return pipeline.make_train_iterator(
        cfg, seed, process_index=process_index, process_count=process_count, source=source
    )


def _assert_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_batch_contract(source):
    cfg = _config()
    shapes = data_config.batch_shapes(cfg)
    assert shapes == [(3, 2, 28, 56), (3, 2, 56, 56), (2, 3, 28, 56), (2, 3, 56, 56), (1, 5, 28, 56), (1, 5, 56, 56)]
    it = _iterator(cfg, source)
    seen = set()
    for _ in range(6):
        batch = next(it)
        assert batch.keys() == KEYS.keys() and all(batch[k].dtype == t for k, t in KEYS.items())
        b, s, h, w = batch["images"].shape[:4]
        assert (b, s, h, w) in shapes
        seen.add((b, s, h, w))
        assert batch["tracks"].shape == (b, s, 16, 2) and batch["world_points"].shape == (b, s, h, w, 3)
        assert 0 <= batch["images"].min() and batch["images"].max() <= 1
        # Normalised: camera 0 is the world frame and the valid points' mean distance is 1.
        np.testing.assert_allclose(batch["extrinsics"][:, 0], np.broadcast_to(np.eye(3, 4), (b, 3, 4)), atol=1e-6)
        for i in range(b):
            real = batch["frame_mask"][i]
            assert real[0] and (real[: real.sum()]).all()
            pts, mask = batch["world_points"][i][real], batch["point_masks"][i][real]
            np.testing.assert_allclose(np.linalg.norm(pts, axis=-1)[mask].mean(), 1.0, rtol=1e-4)
            # Padding repeats the real frames.
            n = real.sum()
            np.testing.assert_array_equal(batch["images"][i][n:], batch["images"][i][np.arange(n, s) % n])
    assert len(seen) > 2


# The paper's sensor and lens augmentations, all on (off in the default config, as in the official trainer).
ALL_AUGS = dict(exposure_p=1.0, blur_p=1.0, distortion_p=1.0, distortion_per_frame=True, pp_shift=0.05)


def _project(points, ext, intr, distortion, hw):
    uv, _ = project_points(points, ext, intr)
    uv, ok = augment.distort_pixels(uv, intr, distortion, augment.corner_radius(intr, *hw))
    assert ok.all()
    return uv


@pytest.mark.parametrize("augs", [{}, ALL_AUGS], ids=["official", "all"])
def test_ground_truth_is_consistent_after_augmentation(source, augs):
    cfg = _config()
    cfg.augs.update(augs)
    batch = next(_iterator(cfg, source, seed=1))
    assert batch["distortion"].any() == bool(augs)
    for i in range(batch["images"].shape[0]):
        for s in range(batch["frame_mask"][i].sum()):
            ext, intr = batch["extrinsics"][i, s].astype(np.float64), batch["intrinsics"][i, s].astype(np.float64)
            mask, dist = batch["point_masks"][i, s], batch["distortion"][i, s].astype(np.float64)
            h, w = mask.shape
            rays = augment.distorted_pixel_rays(*pixel_grid(h, w), intr, dist)
            expected = transform_points(rays * batch["depths"][i, s, ..., None], *_world_from_camera(ext))
            np.testing.assert_allclose(batch["world_points"][i, s][mask], expected[mask], atol=2e-5)
            uv = _project(batch["world_points"][i, s][mask].astype(np.float64), ext, intr, dist, (h, w))
            # Points land back on their pixels (float32 storage of points and cameras: ~1e-3 px).
            np.testing.assert_allclose(uv, np.stack(pixel_grid(h, w), -1)[mask], atol=2e-3)
            off_centre = np.abs(intr[:2, 2] - [(w - 1) / 2, (h - 1) / 2])
            assert (off_centre <= 0.5 + cfg.augs.pp_shift * np.array([w, h])).all()
            # Tracks: projections of the frame-0 query points.
            q = batch["tracks"][i, 0].astype(int)
            queries = batch["world_points"][i, 0][q[:, 1], q[:, 0]].astype(np.float64)
            seen = batch["track_vis"][i, s]
            uv = _project(queries[seen], ext, intr, dist, (h, w))
            np.testing.assert_allclose(batch["tracks"][i, s][seen], uv, atol=2e-3)


def _world_from_camera(ext):
    rot, trans = ext[:, :3], ext[:, 3]
    return rot.T, -rot.T @ trans


@pytest.mark.parametrize("augs", [{}, ALL_AUGS], ids=["official", "all"])
def test_transforms_by_hand_equal_the_pipeline(source, augs):
    cfg, seed, step = _config(), 4, 2
    cfg.augs.update(augs)
    it = _iterator(cfg, source, seed=seed)
    for _ in range(step):
        next(it)
    batch = next(it)
    plan = pipeline.step_plan(cfg, seed, step)
    num, padded, hw = plan["num_frames"], plan["padded_frames"], (plan["height"], plan["width"])
    assert batch["images"].shape[:4] == (plan["batch_size"], padded) + hw
    for item in range(plan["batch_size"]):
        rngs = pipeline.item_rngs(seed, step, 0, item)
        scene = int(rngs["select"].integers(len(source)))
        ids = pipeline.sample_frame_ids(rngs["select"], source.num_frames(scene), num, cfg)
        assert batch["scene_ids"][item] == scene and batch["frame_ids"][item, :num].tolist() == ids
        frames = [source.load_frame(scene, f) for f in ids]
        lenses = augment.sample_lens_params(rngs["lens"], num, cfg.augs)
        images, depths, intrinsics = [], [], []
        for f, lens in zip(frames, lenses, strict=True):
            params = transforms.sample_frame_params(rngs["geometry"], cfg.augs.scales, cfg.augs.rescale_margin)
            params["pp_shift"] = lens["pp_shift"]
            img, depth, k = transforms.transform_frame(f["image"], f["depth"], f["intrinsic"], hw, params)
            img, depth = augment.radial_distort(img, depth, k, lens["distortion"])
            images.append(img)
            depths.append(depth)
            intrinsics.append(k)
        exposures = augment.sample_exposure_params(rngs["sensor"], num, cfg.augs)
        blurs = augment.sample_blur_params(rngs["sensor"], num, cfg.augs)
        images = [
            augment.motion_blur(augment.exposure(i, e), b) for i, e, b in zip(images, exposures, blurs, strict=True)
        ]
        color = transforms.sample_color_params(rngs["color"], num, cfg.augs)
        images = np.stack([transforms.color_jitter(img, p) for img, p in zip(images, color, strict=True)])
        extrinsics = np.stack([f["extrinsic"] for f in frames])
        depths, intrinsics = np.stack(depths).astype(np.float32), np.stack(intrinsics)
        dist = np.array([lens["distortion"] for lens in lenses])
        lensed = dist if dist.any() else None
        points, masks = transforms.world_points_from_depth(depths, extrinsics, intrinsics, lensed)
        tracks, vis, _ = build_tracks(
            points, depths, masks, extrinsics, intrinsics, cfg.num_tracks, rngs["tracks"], distortions=lensed
        )
        extrinsics, points, depths, scale = transforms.normalize_to_first_camera(extrinsics, points, depths, masks)
        pad = np.arange(padded) % num
        expected = dict(
            images=images,
            extrinsics=extrinsics,
            intrinsics=intrinsics,
            depths=depths,
            world_points=np.where(masks[..., None], points, 0),
            point_masks=masks,
            tracks=tracks,
            track_vis=vis,
            distortion=dist,
        )
        for key, value in expected.items():
            np.testing.assert_array_equal(batch[key][item], value[pad].astype(batch[key].dtype), err_msg=key)
        assert batch["scale"][item] == np.float32(scale)


def test_deterministic_and_restorable(source):
    cfg = _config()
    a, b = _iterator(cfg, source, seed=7), _iterator(cfg, source, seed=7)
    _assert_equal(next(a), next(b))
    next(a)
    state = json.loads(json.dumps(a.get_state()))  # what a checkpoint stores
    expected = [next(a) for _ in range(2)]
    restored = _iterator(cfg, source, seed=7)
    restored.set_state(state)
    for batch in expected:
        _assert_equal(next(restored), batch)
    other = next(_iterator(cfg, source, seed=8))
    assert (
        not np.array_equal(other["images"], expected[0]["images"])
        or other["images"].shape != expected[0]["images"].shape
    )


def test_worker_processes_give_the_same_batches_and_restore(source):
    cfg = _config()
    serial = _iterator(cfg, source, seed=2)
    expected = [next(serial) for _ in range(4)]
    parallel = _iterator(_config(num_workers=2, worker_buffer_size=1), source, seed=2)
    try:
        for batch in expected[:2]:
            _assert_equal(next(parallel), batch)
        state = parallel.get_state()
    finally:
        parallel.close()
    restored = _iterator(_config(num_workers=2, worker_buffer_size=1), source, seed=2)
    try:
        restored.set_state(state)
        for batch in expected[2:]:
            _assert_equal(next(restored), batch)
    finally:
        restored.close()


def test_processes_get_disjoint_shards_with_equal_shapes(source):
    cfg = _config()
    its = [_iterator(cfg, source, seed=3, process_index=p, process_count=2) for p in range(2)]
    scenes = [set(), set()]
    for _ in range(4):
        batches = [next(it) for it in its]
        assert batches[0]["images"].shape == batches[1]["images"].shape
        for p in range(2):
            scenes[p].update(batches[p]["scene_ids"].tolist())
    assert scenes[0] <= set(range(4)) and scenes[1] <= set(range(4, 8)) and scenes[0] and scenes[1]
    # The same contiguous split as grain's ShardOptions (drop_remainder=False).
    from grain._src.core.sharding import even_split

    for n, count in ((10, 3), (7, 7), (100, 8)):
        for index in range(count):
            shard = pipeline.shard_range(n, index, count)
            assert (shard.start, shard.stop) == even_split(n, grain.sharding.ShardOptions(index, count))
    with pytest.raises(ValueError, match="gets no scene"):
        pipeline.shard_range(2, 2, 3)  # the first shards take the remainder


class _FlakySource:
    """Scene 0: frame 1 has NaN depth, frame 2 has no valid depth, frame 3 is missing. Scene 1: every frame is
    missing."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return 2

    def scene_name(self, i):
        return f"flaky_{i}"

    def num_frames(self, i):
        return 6

    def load_frame(self, i, f):
        if i == 1 or f == 3:
            raise DataError(self.scene_name(i), f"frame{f}", "image file /nowhere.png is missing")
        frame = self.source.load_frame(i, f)
        if f == 1:
            frame["depth"] = np.where(frame["depth"] > 3, np.nan, frame["depth"]).astype(np.float32)
        if f == 2:
            frame["depth"] = np.zeros_like(frame["depth"])
        return frame


def test_bad_frames_are_named_and_skipped(source, caplog):
    cfg = _config()
    with caplog.at_level(logging.WARNING):
        it = _iterator(cfg, _FlakySource(source), seed=0)
        batches = [next(it) for _ in range(8)]
    for batch in batches:
        assert (batch["scene_ids"] == 0).all() and not np.isin(batch["frame_ids"], [1, 2, 3]).any()
    assert "scene 'flaky_0', frame 'frame0001': " in caplog.text and "NaN" in caplog.text
    assert "scene 'flaky_0', frame 'frame0002': no valid depth pixel" in caplog.text
    assert "scene 'flaky_1', frame 'frame" in caplog.text and "missing" in caplog.text
    # Each distinct problem is logged once per process, however often it is drawn.
    assert caplog.text.count("scene 'flaky_0', frame 'frame0002'") == 1
    with pytest.raises(DataError, match=r"scene 'flaky_\d', frame 'frame\d+'"):
        for _ in range(4):
            next(_iterator(_config(on_bad_frame="raise"), _FlakySource(source), seed=0))


def test_evaluation_mode_and_unpadded_buckets(source):
    cfg = _config(training=False, pad_to_bucket=False, normalize=False)
    batch = next(_iterator(cfg, source, seed=0))
    assert batch["frame_mask"].all() and batch["images"].shape[1] in (2, 3, 5)
    assert (batch["scale"] == 1).all()
    frame = source.load_frame(int(batch["scene_ids"][0]), int(batch["frame_ids"][0, 0]))
    # No augmentation: the frame is only re-centred and resized, and the raw cameras are kept.
    np.testing.assert_allclose(batch["extrinsics"][0, 0], frame["extrinsic"], atol=1e-6)
    assert (
        pipeline.channels_first(batch["images"]).shape == batch["images"].shape[:2] + (3,) + batch["images"].shape[2:4]
    )


def test_config_validation():
    data_config.validate(data_config.get_config())
    bad = {"num_frames": (3, 2), "img_size": 100, "frame_buckets": (2, 4), "on_bad_frame": "ignore"}
    for field, value in bad.items():
        cfg = data_config.get_config()
        cfg[field] = value
        with pytest.raises(ValueError, match=f"data.{field}"):
            data_config.validate(cfg)
    default = data_config.get_config()
    assert all(b * s <= default.max_images_per_batch for b, s, _, _ in data_config.batch_shapes(default))


def test_nearby_frame_sampling_stays_in_a_window():
    cfg = _config(frame_sampling="nearby", nearby_ratio=1.0, allow_duplicate_frames=False)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = pipeline.sample_frame_ids(rng, 50, 4, cfg)
        assert len(set(ids)) == 4 and max(ids) - min(ids) <= 2 * 4
    # Fewer frames than asked for: repeats are unavoidable.
    assert sorted(set(pipeline.sample_frame_ids(rng, 2, 4, _config()))) <= [0, 1]


def test_sources_from_config(tmp_path, caplog):
    from vggt_jax.data.readers import co3d, colmap

    views = SyntheticSource(2, 3, 48, 64, seed=4)
    frames = [[views.load_frame(i, f) for f in range(3)] for i in range(2)]

    def stack(i, key):
        return np.stack([f[key] for f in frames[i]])

    # Two COLMAP scenes, the second without dense depth (normalised by camera distances, with a warning).
    colmap.write_colmap_scene(
        tmp_path / "colmap" / "a", stack(0, "image"), stack(0, "extrinsic"), stack(0, "intrinsic"), stack(0, "depth")
    )
    colmap.write_colmap_scene(
        tmp_path / "colmap" / "b", stack(1, "image"), stack(1, "extrinsic"), stack(1, "intrinsic")
    )
    co3d.write_co3d_category(
        tmp_path / "co3d",
        "toy",
        {
            f"s{i}": dict(
                images=stack(i, "image"),
                extrinsics=stack(i, "extrinsic"),
                intrinsics=stack(i, "intrinsic"),
                depths=stack(i, "depth"),
            )
            for i in range(2)
        },
    )
    for kind in ("colmap", "co3d"):
        cfg = _config()
        cfg.source.update(kind=kind, path=str(tmp_path / kind))
        source = pipeline.make_source(cfg.source)
        assert len(source) == 2
        with caplog.at_level(logging.WARNING):
            it = pipeline.make_train_iterator(cfg, 0, 0, 1, source=source)
            batches = [next(it) for _ in range(10)]
        assert {0, 1} <= {int(i) for b in batches for i in b["scene_ids"]}
        for batch in batches:
            assert np.isfinite(batch["extrinsics"]).all() and np.abs(batch["extrinsics"]).max() < 1e3
        if kind == "colmap":
            assert "scene 'b': no valid depth in a sample" in caplog.text
            assert not any(b["point_masks"][b["scene_ids"] == 1].any() for b in batches)
    # Every reader layout is a source kind; an empty folder of a layout is named.
    from vggt_jax.data.readers import LAYOUTS, folder

    assert set(data_config.SOURCE_KINDS) == {"synthetic", "tfds"} | set(LAYOUTS)
    folder.write_folder_scene(
        tmp_path / "mine" / "s0", stack(0, "image"), stack(0, "extrinsic"), stack(0, "intrinsic"), stack(0, "depth")
    )
    cfg = _config()
    cfg.source.update(kind="folder", path=str(tmp_path / "mine"))
    batch = next(pipeline.make_train_iterator(cfg, 0, 0, 1))
    assert batch["point_masks"].any() and np.isfinite(batch["world_points"]).all()
    # source.stride reaches the video-rate layouts: 3 frames, every 2nd kept.
    from vggt_jax.data.readers import replica

    depths = np.minimum(stack(0, "depth"), 9.0)  # the format holds up to 10 m
    replica.write_replica_scene(
        tmp_path / "replica" / "r0", stack(0, "image"), depths, stack(0, "extrinsic"), stack(0, "intrinsic")[0]
    )
    cfg.source.update(kind="replica", path=str(tmp_path / "replica"), stride=2, min_frames=1)
    assert pipeline.make_source(cfg.source).num_frames(0) == 2
    (tmp_path / "empty").mkdir()
    cfg.source.update(kind="folder", path=str(tmp_path / "empty"))
    with pytest.raises(DataError, match="no usable folder scene"):
        pipeline.make_source(cfg.source)


def test_orbax_saves_and_restores_the_iterator(source, tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    cfg = _config()
    it = _iterator(cfg, source, seed=5)
    next(it)
    manager = ocp.CheckpointManager(
        tmp_path, item_names=("data",), item_handlers={"data": grain.checkpoint.CheckpointHandler()}
    )
    manager.save(1, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    expected = next(it)
    restored = _iterator(cfg, source, seed=5)
    manager.restore(1, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
    _assert_equal(next(restored), expected)
