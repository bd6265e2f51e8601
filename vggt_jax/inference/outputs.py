"""The layout of the model's outputs: which axis of each holds the frames, and one scene's outputs cut out.

Shared by the jitted and frame-sharded predictors and by the exported model's loader (``vggt_jax.export.
artifact``), which must run without the model code: numpy only here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Frame counts a scene is padded to (masked), so a new count inside a bucket reuses the compiled program.
FRAME_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# The frame axis of every output of VGGT.__call__ (batch axis 0, or 1 after a leading iteration axis).
FRAME_DIM = {
    "pose_enc": 1,
    "pose_enc_list": 2,
    "depth": 1,
    "depth_conf": 1,
    "world_points": 1,
    "world_points_conf": 1,
    "track": 1,
    "track_list": 2,
    "vis": 1,
    "conf": 1,
    "frame_descriptor": 1,
    "camera_and_register_tokens": 1,
}
# VGGT-Omega's text head: one [B, C] embedding per scene.
SCENE_OUTPUTS = ("text_alignment_embedding", "text_alignment_token")


def scene_outputs(
    out: Mapping[str, np.ndarray], frames: int, queries: int | None = None, index: int = 0
) -> dict[str, np.ndarray]:
    """Scene ``index`` of batched outputs, without the batch axis, cut to its first ``frames`` frames (padding
    frames dropped) and, for the tracks, its first ``queries`` queries."""
    result = {}
    for name, value in out.items():
        value = np.asarray(value)
        if name in SCENE_OUTPUTS:
            result[name] = value[index]
            continue
        axis = FRAME_DIM[name]
        value = value[index] if axis == 1 else value[:, index]
        value = value.take(np.arange(frames), axis=axis - 1)
        if queries is not None and name in ("track", "track_list", "vis", "conf"):
            value = value.take(np.arange(queries), axis=axis)
        result[name] = value
    return result
