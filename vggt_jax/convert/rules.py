"""The rename tables from the official PyTorch state dicts (VGGT, VGGT-Omega) to our Flax params.

Each rule is (regex on the PyTorch key, replacement, transform). The first matching rule wins. After the
replacement, the dotted key becomes a Flax path: ``frame_blocks.3.attn.qkv.kernel`` ->
``('frame_blocks_3', 'attn', 'qkv', 'kernel')`` (a numeric component joins the name before it, as linen names
list members).

VGGT-Omega first renames its module names to ours (``inter_frame_blocks`` are our global blocks, DINOv3's
``storage_tokens`` its register tokens, ``dense_head`` our depth head), then goes through VGGT's rules. Its two
kinds of persistent buffers are not parameters here: the converter checks each against the value the model uses
(``BUFFER_TRANSFORMS``) and consumes the key.
"""

from __future__ import annotations

import re

import numpy as np

# Modules whose 4-D ``weight`` is a Conv2d kernel [O, I, kh, kw].
_CONV = (
    r"(?:projects\.\d+|resize_layers\.3|layer\d_rn|out_conv|conv[12]|output_conv1|output_conv2\.\d|patch_embed\.proj)"
)

RULES: tuple[tuple[str, str, str], ...] = (
    # nn.MultiheadAttention packs q, k, v into one [3E, E] matrix: a Dense named in_proj here.
    (r"^(.*)\.in_proj_weight$", r"\1.in_proj.kernel", "linear"),
    (r"^(.*)\.in_proj_bias$", r"\1.in_proj.bias", "identity"),
    # DPT resize layers 0 and 1 are ConvTranspose2d with kernel == stride: weight [I, O, kh, kw].
    (r"^((?:.*\.)?resize_layers\.[01])\.weight$", r"\1.kernel", "conv_transpose"),
    # LayerNorm / GroupNorm affine weight.
    (r"^((?:.*\.)?\w*norm\w*)\.weight$", r"\1.scale", "identity"),
    (rf"^((?:.*\.)?{_CONV})\.weight$", r"\1.kernel", "conv2d"),
    (r"^(.*)\.weight$", r"\1.kernel", "linear"),
    (r"^(.*)$", r"\1", "identity"),
)

OMEGA_RULES: tuple[tuple[str, str, str], ...] = (
    (r"^(.*)\.attn\.qkv\.bias_mask$", r"\1.attn.qkv.bias_mask", "buffer:bias_mask"),
    (r"^(.*)\.rope_embed\.periods$", r"\1.rope_embed.periods", "buffer:periods"),
    (r"^aggregator\.inter_frame_blocks\.(.*)$", r"aggregator.global_blocks.\1", "rename"),
    (r"^aggregator\.patch_embed\.storage_tokens$", r"aggregator.patch_embed.register_tokens", "rename"),
    (r"^dense_head\.(proj|proj_conf)\.weight$", r"depth_head.\1.kernel", "conv2d"),
    (r"^dense_head\.(.*)$", r"depth_head.\1", "rename"),
    (r"^(text_alignment_head\.embedding_projector\.2)\.weight$", r"\1.scale", "identity"),
)

FAMILY_RULES = {"vggt": RULES, "vggt_omega": OMEGA_RULES + RULES}
BUFFER_TRANSFORMS = ("buffer:bias_mask", "buffer:periods")

_COMPILED = {family: tuple((re.compile(p), r, t) for p, r, t in rules) for family, rules in FAMILY_RULES.items()}


def _linear(w: np.ndarray) -> np.ndarray:
    """torch Linear weight [out, in] -> flax Dense kernel [in, out]."""
    return w.T


def _conv2d(w: np.ndarray) -> np.ndarray:
    """torch Conv2d weight [O, I, kh, kw] -> flax Conv kernel [kh, kw, I, O]."""
    return w.transpose(2, 3, 1, 0)


def _conv_transpose(w: np.ndarray) -> np.ndarray:
    """torch ConvTranspose2d weight [I, O, kh, kw] -> our kernel [kh, kw, I, O].

    Our stride == kernel upsampling (``model.dpt_head.PatchUpsample``) writes output pixel (i*k + a, j*k + b) from
    input pixel (i, j) with tap (a, b), as PyTorch does, so no spatial flip is needed here; ``lax.conv_transpose``
    would need one (or ``transpose_kernel=True``)."""
    return w.transpose(2, 3, 0, 1)


TRANSFORMS = {
    "identity": lambda w: w,
    "linear": _linear,
    "conv2d": _conv2d,
    "conv_transpose": _conv_transpose,
}

# Shape of the transformed tensor, from the source shape, without loading data.
TRANSFORMED_SHAPE = {
    "identity": lambda s: tuple(s),
    "linear": lambda s: tuple(s[::-1]) if len(s) == 2 else None,
    "conv2d": lambda s: (s[2], s[3], s[1], s[0]) if len(s) == 4 else None,
    "conv_transpose": lambda s: (s[2], s[3], s[0], s[1]) if len(s) == 4 else None,
}


def to_flax_path(dotted: str) -> tuple[str, ...]:
    parts: list[str] = []
    for p in dotted.split("."):
        if p.isdigit():
            if not parts:
                raise ValueError(f"key {dotted!r} starts with an index")
            parts[-1] = f"{parts[-1]}_{p}"
        else:
            parts.append(p)
    return tuple(parts)


def map_key(torch_key: str, family: str = "vggt") -> tuple[tuple[str, ...], str]:
    """PyTorch state-dict key -> (Flax param path, transform name) for a model ``family``. A "rename" rule rewrites
    the key and matching goes on with the next rule; a ``BUFFER_TRANSFORMS`` key has no param path."""
    key = torch_key
    for pattern, repl, transform in _COMPILED[family]:
        if pattern.match(key):
            key = pattern.sub(repl, key)
            if transform != "rename":
                return to_flax_path(key), transform
    raise AssertionError("the last rule matches every key")
