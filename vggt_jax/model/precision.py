"""The precision policy: which parts of a reduced-precision (bfloat16) model compute in float32.

One policy for both families, upstream's: the trunk (DINO patch embedding, the aggregator's frame and global
blocks, the track head's feature extractor and tracker) runs in ``VGGTConfig.dtype``; the softmax of every
attention kernel and every norm accumulate in at least float32 (``attention._acc_dtype``, ``layers.layer_norm``);
the heads that upstream runs with autocast disabled run in ``head_dtype`` (float32): the camera heads, the dense
heads (VGGT's depth and point DPT heads, VGGT-Omega's pixel-shuffle dense head) and Omega's text-alignment head,
together with their output activations; the tracker's correlation volume is float32 (``tracker.corr_sample``).

``FLOAT32_SCOPES`` names those places by the module path a traced operation carries (its name stack), so a test
can list every float32 matmul or convolution of a bfloat16 program and fail on one the policy does not name
(``vggt_jax.export.inspect.float32_ops``).
"""

from __future__ import annotations

import re

# Regexes on an operation's module path (``VGGT/<module>/...``); a float32 dot or convolution in a bfloat16 program
# must match one of them.
FLOAT32_SCOPES: dict[str, str] = {
    "camera head (upstream: autocast disabled)": r"/camera_head/",
    "depth head (upstream: autocast disabled)": r"/depth_head/",
    "point head (upstream: autocast disabled)": r"/point_head/",
    "text-alignment head (VGGT-Omega)": r"/text_alignment_head/",
    "tracker correlation volume": r"/track_head/tracker/bsnc,bshwc->bsnhw",
    # Pallas' splash kernel multiplies its float32 probabilities by the values in float32 (its own choice, inside
    # the Mosaic kernel); q k^T stays bf16 with a float32 accumulator.
    "splash kernel's probabilities x values": r"/splash_mha_fwd\w*/",
    # Its backward's row statistics, rowsum(dO * O), in float32 (flash attention's delta).
    "splash backward's rowsum(dO * O)": r"static_sparsity_splash\)/hsd,hsd->hs$",
}
_FLOAT32 = re.compile("|".join(f"(?:{p})" for p in FLOAT32_SCOPES.values()))


def float32_allowed(path: str) -> bool:
    """Whether the policy lets an operation at module path ``path`` compute in float32 in a bfloat16 model."""
    return bool(_FLOAT32.search(path))
