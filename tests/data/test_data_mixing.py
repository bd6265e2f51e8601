"""Weighted mixing of sources: per-source weights, frame-count ranges and aspect ratios, deterministic per seed,
and an iterator that resumes mid-run to identical batches."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_jax.data import config as data_config
from vggt_jax.data import pipeline
from vggt_jax.data.synthetic import SyntheticSource


def _config():
    cfg = data_config.get_config("tiny")
    cfg.img_size, cfg.frame_buckets, cfg.max_images_per_batch, cfg.num_tracks = 56, (2, 3, 4, 6), 6, 8
    cfg.num_frames = (2, 6)
    data_config.add_source(cfg, "rooms", weight=3.0, num_frames=(2, 3), aspect_ratios=(0.5,), num_scenes=6)
    data_config.add_source(cfg, "orbits", weight=1.0, num_frames=(4, 6), aspect_ratios=(1.0,), num_scenes=4)
    return cfg


@pytest.fixture(scope="module")
def sources():
    # plan_configs order: sorted by name ("orbits", "rooms").
    return [
        SyntheticSource(num_scenes=4, num_frames=6, height=48, width=64, seed=1, trajectories=("orbit",)),
        SyntheticSource(num_scenes=6, num_frames=6, height=48, width=64, seed=2, trajectories=("random",)),
    ]


def test_steps_follow_the_weights_and_each_source_keeps_its_ranges():
    cfg = _config()
    names = [name for name, _, _, _ in data_config.plan_configs(cfg)]
    assert names == ["orbits", "rooms"]
    plans = [pipeline.step_plan(cfg, seed=0, step=t) for t in range(600)]
    share = np.mean([p["source"] == 1 for p in plans])
    assert abs(share - 0.75) < 0.05  # 3:1 by weight (binomial sd 0.018)
    shapes = data_config.batch_shapes(cfg)
    for p in plans:
        lo, hi = ((4, 6), (2, 3))[p["source"]]
        assert lo <= p["num_frames"] <= hi and p["height"] == (56, 28)[p["source"]]
        assert (p["batch_size"], p["padded_frames"], p["height"], p["width"]) in shapes
    assert {(s[1], s[2]) for s in shapes} == {(2, 28), (3, 28), (4, 56), (6, 56)}
    # Another seed draws another sequence of sources.
    other = [pipeline.step_plan(cfg, seed=1, step=t)["source"] for t in range(600)]
    assert other != [p["source"] for p in plans]


def test_mixed_batches_come_from_their_source_and_resume_identically(sources):
    cfg = _config()
    it = pipeline.make_train_iterator(cfg, seed=5, process_index=0, process_count=1, source=sources)
    first = [next(it) for _ in range(3)]
    state = it.get_state()
    rest = [next(it) for _ in range(3)]
    for t, batch in enumerate(first + rest):
        plan = pipeline.step_plan(cfg, 5, t)
        assert (batch["source_ids"] == plan["source"]).all()
        assert batch["images"].shape[1:3] == (plan["padded_frames"], plan["height"])
        assert batch["frame_mask"].sum(1).max() == plan["num_frames"]
        assert (batch["scene_ids"] < len(sources[plan["source"]])).all()
    assert {int(b["source_ids"][0]) for b in first + rest} == {0, 1}
    resumed = pipeline.make_train_iterator(cfg, seed=5, process_index=0, process_count=1, source=sources)
    resumed.set_state(state)
    for expected in rest:
        got = next(resumed)
        assert got.keys() == expected.keys()
        for key in got:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_sources_from_the_config_and_bad_mixes_are_named(sources):
    cfg = _config()
    # Built from the config alone (synthetic kind): same batches as the explicit sources of the same settings.
    cfg.mix.orbits.update(frames_per_scene=6, height=48, width=64, seed=1, trajectories=("orbit",))
    cfg.mix.rooms.update(frames_per_scene=6, height=48, width=64, seed=2, trajectories=("random",))
    a = next(pipeline.make_train_iterator(cfg, seed=0, process_index=0, process_count=1))
    b = next(pipeline.make_train_iterator(cfg, seed=0, process_index=0, process_count=1, source=sources))
    np.testing.assert_array_equal(a["images"], b["images"])
    with pytest.raises(ValueError, match="2 scene sources given for the 1"):
        pipeline.make_train_iterator(data_config.get_config("tiny"), 0, 0, 1, source=sources)
    bad = _config()
    bad.mix.rooms.weight = 0.0
    with pytest.raises(ValueError, match=r"data.mix.rooms.weight must be > 0"):
        data_config.validate(bad)
    bad = _config()
    bad.mix.orbits.num_frames = (4, 30)
    with pytest.raises(ValueError, match=r"data.mix.orbits: data.frame_buckets .* must reach num_frames max 30"):
        data_config.validate(bad)
    with pytest.raises(ValueError, match="unknown source field"):
        data_config.add_source(_config(), "x", pathh="/data")
