"""The VGGT model (``vggt/models/vggt.py``): aggregator + camera, depth, point and track heads; and VGGT-Omega
(``vggt_omega/models/vggt_omega.py``, ``config.family == "vggt_omega"``): the same aggregator with DINOv3 and
register attention, its camera head, the pixel-shuffle dense head and the optional text-alignment head."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from vggt_jax.config import VGGTConfig
from vggt_jax.model import frame_parallel, track_head
from vggt_jax.model.aggregator import Aggregator
from vggt_jax.model.attention import AttentionConfig, attention_scope
from vggt_jax.model.camera_head import CameraHead, OmegaCameraHead
from vggt_jax.model.dpt_head import DPTHead
from vggt_jax.model.text_head import TextAlignmentHead
from vggt_jax.model.track_head import TrackHead


def head_layers(config: VGGTConfig) -> tuple[int, ...]:
    """The aggregator layers some head reads: the DPT layers and the last one (camera head)."""
    layers = {config.aggregator.depth - 1}
    for head in (config.depth_head, config.point_head):
        if head is not None:
            layers.update(head.intermediate_layer_idx)
    if config.track_head is not None:
        layers.update(config.track_head.feature_extractor.intermediate_layer_idx)
    return tuple(sorted(layers))


def attention_config(config: VGGTConfig) -> AttentionConfig:
    return AttentionConfig(config.attention, config.attention_q_chunk, config.attention_kv_chunk)


def _in_attention_scope(method):
    """Trace ``method`` with the attention kernel of ``self.config`` (vggt_jax.model.attention)."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with attention_scope(attention_config(self.config)):
            return method(self, *args, **kwargs)

    return wrapped


def _track_head(cfg: VGGTConfig) -> TrackHead:
    return TrackHead(cfg.track_head, jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype), cfg.remat, name="track_head")


def track_features(config: VGGTConfig, params: dict, tokens: dict[int, jax.Array], image_hw: tuple[int, int]):
    """The track head's feature maps ``[B, S, H/2, W/2, C]`` of aggregator tokens from ``VGGT(...)(...,
    track_tokens=True)``: computed once per frame, then ``track_from_features`` tracks any queries on them."""
    head = track_head.feature_extractor(config.track_head, jnp.dtype(config.dtype), jnp.dtype(config.param_dtype))
    return head.apply(
        {"params": params["params"]["track_head"]["feature_extractor"]},
        tokens,
        image_hw=image_hw,
        patch_start_idx=1 + config.aggregator.num_register_tokens,
        frames_chunk_size=config.heads_frames_chunk or None,
    )


def track_from_features(
    config: VGGTConfig,
    params: dict,
    fmaps: jax.Array,
    query_points: jax.Array,
    frame_mask: jax.Array | None = None,
    point_mask: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """The tracker alone on ``track_features``: the tracks of ``query_points [B, N, 2]`` (pixel x, y in the frame
    that comes first in ``fmaps``) as ``track [B, S, N, 2]``, ``vis`` and ``conf``, as the full forward returns them.

    Reordering the frames of ``fmaps`` (and ``frame_mask``) tracks queries of another frame with the features the
    aggregator computed in the original order: the tracker's frame 0 is the one whose features it queries."""
    cfg = config.track_head
    with attention_scope(attention_config(config)):
        track_list, vis, conf = track_head.tracker(cfg, jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)).apply(
            {"params": params["params"]["track_head"]["tracker"]},
            query_points,
            fmaps,
            iters=cfg.iters,
            frame_mask=frame_mask,
            point_mask=point_mask,
        )
    out = dict(track=track_list[-1], vis=vis)
    if conf is not None:
        out["conf"] = conf
    return out


class VGGT(nn.Module):
    config: VGGTConfig

    @nn.compact
    @_in_attention_scope
    def __call__(
        self,
        images: jax.Array,
        query_points: jax.Array | None = None,
        frame_mask: jax.Array | None = None,
        point_mask: jax.Array | None = None,
        apply_sigmoid: bool = True,
        track_tokens: bool = False,
    ) -> dict[str, jax.Array]:
        """``images: [B, S, 3, H, W]`` or ``[S, 3, H, W]``, RGB in [0, 1], H and W multiples of the patch size;
        ``query_points: [B, N, 2]`` or ``[N, 2]``, pixel (x, y) in frame 0.

        Returns a dict: ``pose_enc [B, S, 9]`` and ``pose_enc_list [iterations, B, S, 9]``, ``depth [B, S, H, W, 1]``,
        ``depth_conf [B, S, H, W]``, ``world_points [B, S, H, W, 3]``, ``world_points_conf [B, S, H, W]``, and with
        queries ``track [B, S, N, 2]``, ``track_list [iterations, B, S, N, 2]``, ``vis [B, S, N]``, ``conf [B, S, N]``.
        VGGT-Omega returns ``pose_enc`` (``pose_enc_list`` holds its one pass), ``depth``, ``depth_conf``,
        ``camera_and_register_tokens [B, S, R, 2C]`` and with the text head ``text_alignment_embedding [B, 2C]`` and
        ``text_alignment_token [B, 2C]``; it has no point or track head.

        ``frame_mask [B, S]`` / ``point_mask [B, N]`` (bool, False = padding) let a caller pad frames and queries to
        a shape bucket: attention ignores the padding, so the real frames' outputs do not change (the padded
        entries of the outputs are meaningless). ``apply_sigmoid=False`` returns vis/conf logits (training).
        Both families add ``frame_descriptor [B, S, 2C]`` (unit norm; the last layer's pooled patch tokens).
        ``track_tokens=True`` adds ``track_tokens``: {layer: [B, S, T, 2C]}, the aggregator layers the track head
        reads, so ``track_features`` / ``track_from_features`` can track more queries later without running the
        aggregator again.
        """
        cfg = self.config
        if images.ndim == 4:
            images = images[None]
        if images.ndim != 5:
            raise ValueError(f"images must be [S, 3, H, W] or [B, S, 3, H, W], got shape {images.shape}")
        if query_points is not None and query_points.ndim == 2:
            query_points = query_points[None]
        dtype, head_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.head_dtype)
        param_dtype = jnp.dtype(cfg.param_dtype)
        image_hw = images.shape[-2:]

        tokens, patch_start_idx = Aggregator(cfg.aggregator, dtype, param_dtype, cfg.remat, name="aggregator")(
            images, keep_layers=head_layers(cfg), frame_mask=frame_mask
        )
        for layer, value in tokens.items():
            self.sow("intermediates", f"aggregator_layer_{layer}", value)
        out: dict[str, jax.Array] = {}
        frames_chunk = cfg.heads_frames_chunk or None
        # Upstream runs these three heads with autocast disabled: full precision whatever the trunk's dtype.
        head_tokens = {k: v.astype(head_dtype) for k, v in tokens.items()}
        last = head_tokens[cfg.aggregator.depth - 1]
        # A per-frame descriptor for loop detection over long sequences (reconstruct.windows): the last layer's patch
        # tokens, mean-pooled and unit-normalised.
        pooled = jnp.mean(last[:, :, patch_start_idx:], axis=2)
        out["frame_descriptor"] = pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        if cfg.family == "vggt_omega":
            s = images.shape[1]
            out["camera_and_register_tokens"] = last[:, :, :patch_start_idx]
            # Both heads attend across frames: sharded over frames, each shard runs them on every shard's special
            # tokens and keeps its own frames (frame_parallel).
            special = frame_parallel.gather_frames(last[:, :, :patch_start_idx], 1)
            special_mask = None if frame_mask is None else frame_parallel.gather_frames(frame_mask, 1)
            if cfg.camera_head is not None:
                pose_enc = OmegaCameraHead(cfg.camera_head, head_dtype, param_dtype, name="camera_head")(
                    special, special_mask
                )
                out["pose_enc"] = frame_parallel.local_frames(pose_enc, 1, s)
                out["pose_enc_list"] = out["pose_enc"][None]
            if cfg.text_head is not None:
                head = TextAlignmentHead(cfg.text_head, head_dtype, param_dtype, name="text_alignment_head")
                out["text_alignment_embedding"], out["text_alignment_token"] = head(special, special_mask)
        elif cfg.camera_head is not None:
            # The camera head reads each frame's camera token and its trunk attends across frames: sharded over
            # frames, every shard runs it on all shards' camera tokens and keeps its own frames (frame_parallel).
            s = images.shape[1]
            camera_tokens = frame_parallel.gather_frames(last[:, :, :1], 1)
            camera_mask = None if frame_mask is None else frame_parallel.gather_frames(frame_mask, 1)
            pose_enc_list = CameraHead(cfg.camera_head, head_dtype, param_dtype, name="camera_head")(
                camera_tokens, camera_mask
            )
            pose_enc_list = frame_parallel.local_frames(pose_enc_list, 2, s)
            out["pose_enc"], out["pose_enc_list"] = pose_enc_list[-1], pose_enc_list
        if cfg.depth_head is not None:
            head = DPTHead(cfg.depth_head, head_dtype, param_dtype, cfg.remat, name="depth_head")
            out["depth"], out["depth_conf"] = head(head_tokens, image_hw, patch_start_idx, frames_chunk)
        if cfg.point_head is not None:
            head = DPTHead(cfg.point_head, head_dtype, param_dtype, cfg.remat, name="point_head")
            out["world_points"], out["world_points_conf"] = head(head_tokens, image_hw, patch_start_idx, frames_chunk)
        if track_tokens and cfg.track_head is not None:
            out["track_tokens"] = {k: tokens[k] for k in cfg.track_head.feature_extractor.intermediate_layer_idx}
        if cfg.track_head is not None and (query_points is not None or self.is_initializing()):
            if query_points is None:
                query_points = jnp.zeros((images.shape[0], 1, 2), dtype)
            track_list, vis, conf = _track_head(cfg)(
                tokens,
                image_hw,
                patch_start_idx,
                query_points,
                apply_sigmoid=apply_sigmoid,
                frame_mask=frame_mask,
                point_mask=point_mask,
                frames_chunk_size=frames_chunk,
            )
            out.update(track=track_list[-1], track_list=track_list, vis=vis)
            if conf is not None:
                out["conf"] = conf
        return out
