"""The TFDS builder writes ArrayRecord without tensorflow; the scene source reads frames back exactly."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest

from vggt_jax.data import config as data_config
from vggt_jax.data import pipeline
from vggt_jax.data.sources import DataError
from vggt_jax.data.synthetic import SyntheticSource
from vggt_jax.data.tfds_builder import TfdsSceneSource, build_tfds


class _WithBadFrame:
    """A source whose scene 1, frame 2 has NaN depth."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def scene_name(self, i):
        return self.source.scene_name(i)

    def num_frames(self, i):
        return self.source.num_frames(i)

    def load_frame(self, i, f):
        frame = self.source.load_frame(i, f)
        if (i, f) == (1, 2):
            frame["depth"] = np.full_like(frame["depth"], np.nan)
        return frame


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    train, val = SyntheticSource(3, 4, 48, 64, seed=1), SyntheticSource(1, 3, 48, 64, seed=2)
    path = build_tfds(root, {"train": _WithBadFrame(train), "val": val}, on_error="skip")
    return root, path, train, val


def test_frames_round_trip(built):
    root, path, train, val = built
    assert path.parent.name == "vggt_scenes"
    source = TfdsSceneSource(root, "train")
    assert len(source) == 3 and [source.num_frames(i) for i in range(3)] == [4, 3, 4]
    assert [source.scene_name(i) for i in range(3)] == [train.scene_name(i) for i in range(3)]
    for i in range(3):
        originals = [f for f in range(4) if (i, f) != (1, 2)]
        for j, f in enumerate(originals):
            got, want = source.load_frame(i, j), train.load_frame(i, f)
            for key in ("image", "depth", "extrinsic", "intrinsic"):
                np.testing.assert_array_equal(got[key], want[key])
            assert got["name"] == want["name"] and got["has_depth"]
    val_source = TfdsSceneSource(path, "val")  # the version directory works too
    np.testing.assert_array_equal(val_source.load_frame(0, 2)["image"], val.load_frame(0, 2)["image"])
    with pytest.raises(ValueError, match="no split 'test'"):
        TfdsSceneSource(root, "test")
    # Picklable for grain workers: the reopened copy reads the same records.
    copy = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(copy.load_frame(2, 3)["depth"], source.load_frame(2, 3)["depth"])


def test_bad_frame_is_reported_at_build_time(tmp_path, caplog):
    with pytest.raises(DataError, match="scene 'synthetic_1_1', frame 'frame0002': 3072 depth values are NaN"):
        build_tfds(tmp_path / "a", {"train": _WithBadFrame(SyntheticSource(2, 3, 48, 64, seed=1))})
    with caplog.at_level(logging.WARNING):
        build_tfds(tmp_path / "b", {"train": _WithBadFrame(SyntheticSource(2, 3, 48, 64, seed=1))}, on_error="skip")
    assert "scene 'synthetic_1_1', frame 'frame0002'" in caplog.text


def test_pipeline_reads_the_same_batches_from_tfds(built):
    root, _, _, val = built
    cfg = data_config.get_config("tiny")
    cfg.img_size, cfg.num_tracks = 56, 16
    a = next(pipeline.make_train_iterator(cfg, seed=3, process_index=0, process_count=1, source=val))
    b = next(
        pipeline.make_train_iterator(cfg, seed=3, process_index=0, process_count=1, source=TfdsSceneSource(root, "val"))
    )
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
