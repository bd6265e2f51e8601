"""Alternating-attention aggregator (``vggt/models/aggregator.py``, ``vggt_omega/models/aggregator.py``).

Per frame: [camera token, register tokens, DINO patch tokens]; then ``depth`` rounds of frame attention (tokens
of one frame) and global attention (tokens of all frames of a scene), each output the concatenation of the two.
VGGT-Omega's "inter-frame" blocks are the global blocks here (same parameters, the converter renames them); at its
register-attention layers they attend over the camera and register tokens of all frames only, and the patch tokens
pass through unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import AggregatorConfig
from vggt_jax.model import frame_parallel
from vggt_jax.model.dino import DinoVisionTransformer
from vggt_jax.model.layers import block_class, constrain, mlp_rows_scope
from vggt_jax.model.rope import Rope, axial_rope, rope_tables, token_positions

Dtype = Any

# Upstream keeps these as float32 buffers, so a float64 run normalises with float64(float32(c)).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def frame_split_tokens(token: jax.Array, b: int, s: int, first_frame: jax.Array | int = 0) -> jax.Array:
    """``token [1, 2, X, C]`` -> ``[B, S, X, C]``: index 0 for frame 0, index 1 for every other frame.
    ``first_frame``: the scene index of the first of these S frames (a shard of frames, ``frame_parallel``)."""
    if not isinstance(first_frame, int):
        is_first = (jnp.arange(s) + first_frame == 0)[None, :, None, None]
        return jnp.broadcast_to(jnp.where(is_first, token[:, :1], token[:, 1:]), (b, s, *token.shape[2:]))
    first = jnp.broadcast_to(token[:, :1], (b, 1, *token.shape[2:]))
    others = jnp.broadcast_to(token[:, 1:], (b, s - 1, *token.shape[2:]))
    return jnp.concatenate([first, others], axis=1)


def register_attention(
    block: Callable[..., jax.Array], x: jax.Array, num_special: int, frame_mask: jax.Array | None = None
) -> jax.Array:
    """VGGT-Omega's register attention on ``x [B, S, T, C]``: ``block`` on the first ``num_special`` tokens (camera
    and registers) of all frames, frame-major ``[B, S * num_special, C]``; the patch tokens pass through. Sharded
    over frames, the block gathers every shard's keys and values like global attention."""
    b, s, _, c = x.shape
    special = x[:, :, :num_special].reshape(b, s * num_special, c)
    mask = None if frame_mask is None else jnp.repeat(frame_mask, num_special, axis=1)
    with frame_parallel.global_attention():
        special = block(special, None, mask)
    return jnp.concatenate([special.reshape(b, s, num_special, c), x[:, :, num_special:]], axis=2)


class Aggregator(nn.Module):
    config: AggregatorConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: str = "none"

    @nn.compact
    def __call__(
        self, images: jax.Array, keep_layers: Sequence[int] | None = None, frame_mask: jax.Array | None = None
    ) -> tuple[dict[int, jax.Array], int]:
        """``images: [B, S, 3, H, W]`` in [0, 1] -> ({layer: [B, S, T, 2C]}, patch_start_idx).

        ``keep_layers``: the aggregator layers to return (default all); the others are never stored.
        ``frame_mask``: [B, S] bool, False for padding frames, which global attention then ignores.
        """
        with mlp_rows_scope(self.config.mlp_rows_chunk):
            return self._forward(images, keep_layers, frame_mask)

    def _forward(
        self, images: jax.Array, keep_layers: Sequence[int] | None, frame_mask: jax.Array | None
    ) -> tuple[dict[int, jax.Array], int]:
        cfg = self.config
        b, s, c_in, height, width = images.shape
        if c_in != 3:
            raise ValueError(f"expected 3 input channels, got {c_in} (images are [B, S, 3, H, W])")
        p = cfg.patch_embed.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {p}")
        c = cfg.embed_dim
        if cfg.patch_embed.embed_dim != c:
            raise ValueError(f"{cfg.patch_embed.variant} is {cfg.patch_embed.embed_dim}-d but embed_dim is {c}")
        norm_dtype = jnp.promote_types(images.dtype, jnp.float32)
        x = (images.astype(norm_dtype) - IMAGENET_MEAN.reshape(3, 1, 1)) / IMAGENET_STD.reshape(3, 1, 1)
        x = x.reshape(b * s, 3, height, width).transpose(0, 2, 3, 1).astype(self.dtype)
        patch_tokens = DinoVisionTransformer(
            cfg.patch_embed, self.dtype, self.param_dtype, self.remat, cfg.scan_layers, name="patch_embed"
        )(x)
        self.sow("intermediates", "patch_tokens", patch_tokens)

        init = nn.initializers.normal(1e-6)
        r = cfg.num_register_tokens
        camera_token = self.param("camera_token", init, (1, 2, 1, c), self.param_dtype)
        register_token = self.param("register_token", init, (1, 2, r, c), self.param_dtype)
        first = frame_parallel.first_frame(s)
        special = jnp.concatenate(
            [frame_split_tokens(camera_token, b, s, first), frame_split_tokens(register_token, b, s, first)], axis=2
        ).astype(self.dtype)
        tokens = jnp.concatenate([special, patch_tokens.reshape(b, s, -1, c)], axis=2)
        t = tokens.shape[2]
        patch_start_idx = 1 + r

        rope = global_rope = None
        if cfg.rope_freq > 0 and cfg.rope_style == "axial":
            # Upstream computes this table in the run's dtype and casts it to float32: q and k of every frame block
            # are rotated in float32 (and so rounded to it in a float64 run).
            table_dtype = jnp.float64 if self.dtype == jnp.float64 else jnp.float32
            grid = (height // p, width // p)
            rope = axial_rope(*grid, c // cfg.num_heads, cfg.rope_freq, patch_start_idx, table_dtype, jnp.float32)
        elif cfg.rope_freq > 0:
            positions = token_positions(height // p, width // p, patch_start_idx)
            rope = Rope(*rope_tables(positions, c // cfg.num_heads, cfg.rope_freq, self.dtype))
            # Global attention reuses each frame's positions: no temporal position.
            global_rope = rope.tile(s)
        elif cfg.rope_style not in ("vggt", "axial"):
            raise ValueError(f"unknown rope_style {cfg.rope_style!r}; choose 'vggt' or 'axial'")

        if cfg.depth % cfg.aa_block_size:
            raise ValueError(f"depth ({cfg.depth}) must be divisible by aa_block_size ({cfg.aa_block_size})")
        for attn_type in cfg.aa_order:
            if attn_type not in ("frame", "global"):
                raise ValueError(f"unknown attention type {attn_type!r} in aa_order")
        block = lambda name: block_class(self.remat)(  # noqa: E731
            c,
            cfg.num_heads,
            cfg.mlp_ratio,
            init_values=cfg.init_values,
            qk_norm=cfg.qk_norm,
            mask_k_bias=cfg.mask_k_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )
        global_mask = None if frame_mask is None else jnp.repeat(frame_mask, t, axis=1)  # [B, S * T]
        register_layers = set(cfg.register_attention_layers)
        if not register_layers <= set(range(cfg.depth)):
            raise ValueError(f"register_attention_layers {sorted(register_layers)} outside the {cfg.depth} layers")

        def attend(module: nn.Module, attn_type: str, x: jax.Array) -> jax.Array:
            """One block of ``attn_type`` ("frame", "global" or "register") attention on ``x [B, S, T, C]``."""
            if attn_type == "register":
                return register_attention(module, x, patch_start_idx, frame_mask)
            if attn_type == "frame":
                x, table, mask = x.reshape(b * s, t, c), rope, None
            else:
                x, table, mask = x.reshape(b, s * t, c), global_rope, global_mask
            # Sharded over frames, global attention gathers every shard's keys and values.
            with frame_parallel.global_attention() if attn_type == "global" else contextlib.nullcontext():
                x = module(x, table, mask)
            return constrain(x, "batch", "act_tokens", "act_embed").reshape(b, s, t, c)

        def kind(attn_type: str, layer: int) -> str:
            return "register" if attn_type == "global" and layer in register_layers else attn_type

        keep = range(cfg.depth) if keep_layers is None else keep_layers
        keep = sorted({i for i in keep if 0 <= i < cfg.depth})
        if cfg.scan_layers:
            return self._scanned_layers(tokens, keep, block, attend, register_layers), patch_start_idx
        outputs: dict[int, jax.Array] = {}
        counters = {"frame": 0, "global": 0}
        for _ in range(cfg.depth // cfg.aa_block_size):
            inter: dict[str, list[jax.Array]] = {}
            for attn_type in cfg.aa_order:
                inter[attn_type] = []
                for _ in range(cfg.aa_block_size):
                    layer = counters[attn_type]
                    tokens = attend(block(f"{attn_type}_blocks_{layer}"), kind(attn_type, layer), tokens)
                    counters[attn_type] += 1
                    inter[attn_type].append(tokens)
            for i in range(cfg.aa_block_size):
                layer = counters[cfg.aa_order[0]] - cfg.aa_block_size + i
                if layer in keep:
                    outputs[layer] = jnp.concatenate([inter["frame"][i], inter["global"][i]], axis=-1)
        return outputs, patch_start_idx

    def _scanned_layers(
        self,
        tokens: jax.Array,
        keep: list[int],
        block: Callable[[str], nn.Module],
        attend: Callable[[nn.Module, str, jax.Array], jax.Array],
        register_layers: set[int],
    ) -> dict[int, jax.Array]:
        """The ``depth`` rounds of ``__call__`` as one ``nn.scan``, with the blocks' parameters stacked on a leading
        layer axis (``frame_blocks/...``, ``global_blocks/...``). ``tokens: [B, S, T, C]``; returns {layer in keep:
        [B, S, T, 2C]}.

        Only the kept layers are stored: the carry holds a buffer with one slot per kept layer (plus one scratch slot
        when layers follow the last kept one) and layer i writes its output into the slot of the first kept layer
        >= i, which that layer overwrites later. The buffer is only ever updated, a linear function of the layers'
        outputs, so differentiating the scan keeps no per-layer copy of it. Register-attention layers (VGGT-Omega)
        choose their global block's kind per step with ``nn.cond``, which runs one branch."""
        cfg = self.config
        if cfg.aa_block_size != 1:
            raise ValueError(
                f"scan_layers runs one frame and one global block per scan step; aa_block_size={cfg.aa_block_size} "
                "needs scan_layers=False"
            )
        slots = np.searchsorted(keep, np.arange(cfg.depth))  # == len(keep) after the last kept layer: scratch
        b, s, t, c = tokens.shape
        # zeros_like: inside shard_map the buffer varies over the mesh axes as the tokens do, as a scan carry must.
        buffer = jnp.zeros_like(tokens, shape=(len(keep) + int(slots[-1] == len(keep)), b, s, t, 2 * c))
        buffer = constrain(buffer, None, "batch", "act_embed")

        def attend_global(module: nn.Module, tokens: jax.Array, is_register: jax.Array) -> jax.Array:
            if not register_layers:
                return attend(module, "global", tokens)
            return nn.cond(
                is_register,
                lambda mdl, x: attend(mdl, "register", x),
                lambda mdl, x: attend(mdl, "global", x),
                module,
                tokens,
            )

        def round_(blocks: _Blocks, carry: tuple[jax.Array, jax.Array], xs: tuple[jax.Array, jax.Array]):
            tokens, buffer = carry
            slot, is_register = xs
            out = {}
            for attn_type, module in zip(cfg.aa_order, blocks.modules, strict=True):
                if attn_type == "global":
                    tokens = out[attn_type] = attend_global(module, tokens, is_register)
                else:
                    tokens = out[attn_type] = attend(module, attn_type, tokens)
            layer = jnp.concatenate([out["frame"], out["global"]], axis=-1)
            buffer = constrain(jax.lax.dynamic_update_index_in_dim(buffer, layer, slot, 0), None, "batch", "act_embed")
            return (tokens, buffer), None

        # The blocks are children of this module (``aggregator/frame_blocks``), handed to the scan through a holder
        # without variables of its own: scanning a function of ``self`` would stack every aggregator parameter.
        blocks = _Blocks(tuple(block(f"{attn_type}_blocks") for attn_type in cfg.aa_order))
        # check_constancy_invariants=False skips flax's extra trace of the body (nothing is broadcast here), which
        # would also drop the tokens' varying mesh axes inside shard_map and fail in ring attention's loop.
        scan = nn.scan(
            round_,
            variable_axes={"params": 0, "intermediates": 0},
            split_rngs={"params": True},
            check_constancy_invariants=False,
        )
        is_register = jnp.asarray([i in register_layers for i in range(cfg.depth)])
        (_, buffer), _ = scan(blocks, (tokens, buffer), (jnp.asarray(slots, jnp.int32), is_register))
        return {layer: buffer[i] for i, layer in enumerate(keep)}


class _Blocks(nn.Module):
    """Holds the scanned blocks, one per entry of ``aa_order``, for ``nn.scan`` to lift their variables."""

    modules: tuple[nn.Module, ...]
