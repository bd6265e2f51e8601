"""The track head (``vggt/heads/track_head.py``): a feature-only DPT head followed by the point tracker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vggt_jax.config import TrackHeadConfig
from vggt_jax.model import frame_parallel
from vggt_jax.model.dpt_head import DPTHead
from vggt_jax.model.tracker import BaseTrackerPredictor

Dtype = Any


def feature_extractor(config: TrackHeadConfig, dtype: Dtype, param_dtype: Dtype, remat: str = "none") -> DPTHead:
    """The track head's feature-only DPT head (``track_head/feature_extractor``)."""
    return DPTHead(config.feature_extractor, dtype, param_dtype, remat, name="feature_extractor")


def tracker(config: TrackHeadConfig, dtype: Dtype, param_dtype: Dtype) -> BaseTrackerPredictor:
    """The track head's tracker (``track_head/tracker``)."""
    return BaseTrackerPredictor(config.tracker, dtype, param_dtype, name="tracker")


class TrackHead(nn.Module):
    """``feature_extractor`` (DPTHead, feature_only, down_ratio 2) -> ``tracker`` (BaseTrackerPredictor)."""

    config: TrackHeadConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: str = "none"  # of the feature extractor's chunks of frames (DPTHead)

    @nn.compact
    def __call__(
        self,
        tokens: Mapping[int, jax.Array],
        image_hw: tuple[int, int],
        patch_start_idx: int,
        query_points: jax.Array,
        iters: int | None = None,
        apply_sigmoid: bool = True,
        frame_mask: jax.Array | None = None,
        point_mask: jax.Array | None = None,
        frames_chunk_size: int | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """Track query points of frame 0 through all frames.

        Args:
          tokens: {aggregator layer: [B, S, T, 2 * embed_dim]}, at least the feature extractor's layers.
          image_hw: (H, W) of the input images.
          patch_start_idx: index of the first patch token (after camera and register tokens).
          query_points: [B, N, 2] pixel (x, y) in frame 0.
          iters: tracker iterations (default ``config.iters``).
          apply_sigmoid: False returns vis/conf logits.
          frame_mask, point_mask: [B, S], [B, N] bool, False marks padding (shape buckets).
          frames_chunk_size: the feature extractor runs over at most this many frames at a time.

        Returns:
          ``track_list [iters, B, S, N, 2]`` pixel (x, y), ``vis [B, S, N]``, ``conf [B, S, N]`` or None.
        """
        cfg = self.config
        if not cfg.feature_extractor.feature_only:
            raise ValueError("TrackHeadConfig.feature_extractor must have feature_only=True (it feeds the tracker)")
        if cfg.feature_extractor.features != cfg.tracker.latent_dim:
            raise ValueError(
                f"the feature extractor's features ({cfg.feature_extractor.features}) must equal the tracker's "
                f"latent_dim ({cfg.tracker.latent_dim})"
            )
        fmaps = feature_extractor(cfg, self.dtype, self.param_dtype, self.remat)(
            tokens, image_hw=image_hw, patch_start_idx=patch_start_idx, frames_chunk_size=frames_chunk_size
        )
        # Sharded over frames, the tracker (which correlates every frame with frame 0's query features) sees the
        # features of all shards and each shard keeps its own frames' tracks (frame_parallel).
        s = fmaps.shape[1]
        fmaps = frame_parallel.gather_frames(fmaps, 1)
        frame_mask = None if frame_mask is None else frame_parallel.gather_frames(frame_mask, 1)
        track_list, vis, conf = tracker(cfg, self.dtype, self.param_dtype)(
            query_points,
            fmaps,
            iters=cfg.iters if iters is None else iters,
            apply_sigmoid=apply_sigmoid,
            frame_mask=frame_mask,
            point_mask=point_mask,
        )
        local = frame_parallel.local_frames
        return local(track_list, 2, s), local(vis, 1, s), None if conf is None else local(conf, 1, s)
