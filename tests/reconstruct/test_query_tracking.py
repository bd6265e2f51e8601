"""Query frames and pixels, and tracking from frames other than 0 (reordered tokens, or a rerun) on a micro model
with random weights: the machinery (orders, chunks, pixel frames), not the quality, which needs trained weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vggt_jax.config import micro
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.geometry import look_at
from vggt_jax.inference.predictor import Predictor
from vggt_jax.model.random_init import random_params
from vggt_jax.model.vggt import VGGT
from vggt_jax.reconstruct.pipeline import TrackOptions, reconstruct, track_query_frames
from vggt_jax.reconstruct.queries import harris_response, select_query_frames, select_query_points


@pytest.fixture(scope="module")
def predictor():
    config = micro()
    images = jax.ShapeDtypeStruct((1, 2, 3, 56, 56), jnp.float32)
    queries = jax.ShapeDtypeStruct((1, 4, 2), jnp.float32)
    return Predictor(config, random_params(VGGT(config), images, queries), compilation_cache=False)


@pytest.fixture(scope="module")
def frames():
    views = SyntheticScene(seed=4, num_frames=3, height=56, width=56, trajectory="orbit").render()
    return views["images"].transpose(0, 3, 1, 2).astype(np.float32)


def test_query_points_sit_on_texture_inside_the_mask():
    rng = np.random.default_rng(0)
    image = np.full((60, 80, 3), 0.5)
    image[20:40, 30:60] = rng.random((20, 30, 3))  # texture only here
    points = select_query_points(image, 50)
    assert 0 < len(points) <= 50
    assert (points[:, 0] >= 28).all() and (points[:, 0] <= 61).all() and (points[:, 1] >= 18).all()
    response = harris_response(image @ np.array([0.299, 0.587, 0.114]))
    values = response[points[:, 1].astype(int), points[:, 0].astype(int)]
    assert np.all(np.diff(values) <= 0)  # strongest first
    mask = np.zeros((60, 80), bool)
    mask[:, :45] = True
    assert (select_query_points(image, 50, mask=mask)[:, 0] < 45).all()
    conf = np.ones((60, 80))
    conf[:, 40:] = 2.0  # the median is 1.5: only the right half is at least the median confidence
    assert (select_query_points(image, 50, conf=conf)[:, 0] >= 40).all()
    assert len(select_query_points(np.full((60, 80, 3), 0.5), 50)) == 0  # a flat image has no corner


def test_query_frames_start_at_frame_0_and_spread():
    up = np.array([0.0, 0.0, 1.0])
    angles = np.radians([0, 2, 4, 90, 92, 45])
    cams = np.stack([look_at(np.array([3 * np.cos(a), 3 * np.sin(a), 1.0]), np.zeros(3), up) for a in angles])
    assert select_query_frames(cams, 3, "pose", points=np.zeros((1, 3))) == [0, 4, 5]
    assert select_query_frames(cams, 3, "uniform") == [0, 2, 5]
    every = select_query_frames(cams, 10, points=np.zeros((1, 3)))  # never more than there are frames
    assert every[:4] == [0, 4, 5, 2] and sorted(every) == list(range(6))
    with pytest.raises(ValueError, match="rule"):
        select_query_frames(cams, 2, "dino")


def test_track_from_features_matches_the_full_forward(predictor, frames):
    queries = np.array([[10.0, 12.0], [30.5, 40.0], [44.0, 20.0]])
    full = predictor(frames, queries, keep_track_features=True)
    track, vis, _ = predictor.track(full.track_features, 0, queries, chunk=16)
    # The same track head on the same tokens: only the programs differ (one forward, or features then tracker).
    np.testing.assert_allclose(track, full.track, atol=1e-3)
    np.testing.assert_allclose(vis, full.vis, atol=1e-4)
    # From frame 2: the tracker's frame 0 is frame 2, whose track starts at the query pixels.
    track2, _, _ = predictor.track(full.track_features, 2, queries, chunk=2)  # two chunks, the second padded
    np.testing.assert_array_equal(track2[2], queries.astype(np.float32))
    # Padding a chunk changes nothing (masked); its real queries do (the tracker attends across tracks).
    padded, _, _ = predictor.track(full.track_features, 2, queries[:2], chunk=4)
    np.testing.assert_allclose(track2[:, :2], padded, atol=1e-3)
    with pytest.raises(ValueError, match="query_frame 3"):
        predictor.track(full.track_features, 3, queries)


@pytest.mark.parametrize("method", ["reorder", "rerun"])
def test_tracks_from_several_query_frames(predictor, frames, method):
    pred = predictor(frames, keep_track_features=True)
    opts = TrackOptions(query_frames=2, max_query_points=8, method=method, chunk=8)
    tracks, chosen, seconds = track_query_frames(predictor, frames, pred, opts)
    assert chosen[0] == 0 and len(chosen) == 2 and tracks.vis.shape[0] == 3
    for q in chosen:
        sel = tracks.query_frame == q
        assert 0 < sel.sum() <= 8
        row, col = tracks.xy[q, sel, 1].astype(int), tracks.xy[q, sel, 0].astype(int)
        np.testing.assert_allclose(tracks.xyz[sel], pred.world_points_from_depth[q, row, col], rtol=1e-6)
    assert (seconds["forward"] > 0) == (method == "rerun")


def test_reconstruct_runs_end_to_end_on_random_weights(predictor, frames):
    """Random weights: few or no inliers. The stage must still return a model and a report, never raise."""
    recon = reconstruct(predictor, frames, track_options=TrackOptions(query_frames=3, max_query_points=16, chunk=16))
    assert recon.ba is not None and recon.ba.reconstruction.num_images() == 3
    assert recon.adjusted.extrinsic.shape == (3, 3, 4)
    assert set(recon.report) >= {"forward_seconds", "query_frames", "ba", "tracking_seconds"}
    assert len(recon.report["ba"]["inliers_per_frame"]) == 3
    assert recon.pred.track_features is None
