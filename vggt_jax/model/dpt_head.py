"""DPT head (``vggt/heads/dpt_head.py``): dense depth / point maps, or dense features for the tracker; with
``output="pixel_shuffle"`` VGGT-Omega's dense head (``vggt_omega/models/heads/dense_head.py``), which fuses the same
way but predicts at 1/4 resolution and pixel-shuffles the logits to full resolution.

Channels-last throughout: tokens ``[B, S, T, C]`` -> maps ``[B*S, h, w, C]``. Parameter names mirror the official
module tree (``projects_i``, ``resize_layers_i``, ``scratch/refinenet{1..4}/resConfUnit{1,2}/conv{1,2}``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import DPTHeadConfig
from vggt_jax.model import spmd
from vggt_jax.model.activations import activate_head
from vggt_jax.model.layers import layer_norm, remat_policy
from vggt_jax.model.resample import resize_bilinear_align_corners

Dtype = Any


def torch_linspace(start: float, end: float, steps: int, dtype: np.dtype) -> np.ndarray:
    """``torch.linspace`` in ``dtype``: the first half counts up from start, the second half down from end."""
    start, end = np.asarray(start, dtype), np.asarray(end, dtype)
    if steps == 1:
        return start[None]
    step = (end - start) / np.asarray(steps - 1, dtype)
    idx = np.arange(steps)
    up = start + step * idx.astype(dtype)
    down = end - step * (steps - 1 - idx).astype(dtype)
    return np.where(idx < steps // 2, up, down).astype(dtype)


def uv_pos_embed(h: int, w: int, channels: int, aspect_ratio: float, dtype: np.dtype, ratio: float = 0.1) -> np.ndarray:
    """The DPT position embedding ``[h, w, channels]`` (``create_uv_grid`` + ``position_grid_to_embed``) times
    ``ratio``, as a static numpy constant.

    Upstream builds the uv grid in the feature dtype, takes sin/cos in float64 (omega_0 = 100), rounds the
    embedding to float32 and scales it by 0.1 in float32; the sum with the features is in their dtype.
    """
    diag = (aspect_ratio**2 + 1.0) ** 0.5
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    xs = torch_linspace(-span_x * (w - 1) / w, span_x * (w - 1) / w, w, dtype).astype(np.float64)
    ys = torch_linspace(-span_y * (h - 1) / h, span_y * (h - 1) / h, h, dtype).astype(np.float64)
    quarter = channels // 4
    omega = 1.0 / 100.0 ** (np.arange(quarter, dtype=np.float64) / (channels / 4.0))

    def sincos(p):  # [n] -> [n, channels/2]
        out = p[:, None] * omega[None]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    emb = np.concatenate(
        [
            np.broadcast_to(sincos(xs)[None], (h, w, 2 * quarter)),
            np.broadcast_to(sincos(ys)[:, None], (h, w, 2 * quarter)),
        ],
        axis=-1,
    ).astype(np.float32)
    return emb * np.float32(ratio)


class PatchUpsample(nn.Module):
    """``nn.ConvTranspose2d(c, c, kernel_size=k, stride=k)``: each input pixel writes its own k x k output block,
    so it is one einsum and a reshape (a dilated convolution would multiply k*k zeros per output)."""

    features: int
    factor: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.factor
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features), self.param_dtype
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        n, h, w, _ = x.shape
        y = jnp.einsum("nhwi,abio->nhawbo", x.astype(self.dtype), kernel.astype(self.dtype))
        return y.reshape(n, h * k, w * k, self.features) + bias.astype(self.dtype)


def _conv(features: int, kernel: int, dtype, param_dtype, name: str, stride: int = 1, use_bias: bool = True):
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        name=name,
    )


class ResidualConvUnit(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the skip. VGGT's ReLU is ``inplace=True`` and overwrites the
    unit's input, so the skip adds ``relu(x)``, not ``x``; VGGT-Omega's is not in-place (``inplace_relu=False``)."""

    features: int
    inplace_relu: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        activated = nn.relu(x)
        out = _conv(self.features, 3, self.dtype, self.param_dtype, "conv1")(activated)
        out = _conv(self.features, 3, self.dtype, self.param_dtype, "conv2")(nn.relu(out))
        return out + (activated if self.inplace_relu else x)


class FeatureFusionBlock(nn.Module):
    """RefineNet fusion: ``out = x0 + rcu1(x1)`` (if residual), ``rcu2``, bilinear (align_corners) upsample to
    ``size`` (default x2), 1x1 ``out_conv``."""

    features: int
    has_residual: bool = True
    inplace_relu: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x0: jax.Array, x1: jax.Array | None = None, size: tuple[int, int] | None = None) -> jax.Array:
        kw = dict(inplace_relu=self.inplace_relu, dtype=self.dtype, param_dtype=self.param_dtype)
        out = x0
        if self.has_residual:
            out = out + ResidualConvUnit(self.features, name="resConfUnit1", **kw)(x1)
        out = ResidualConvUnit(self.features, name="resConfUnit2", **kw)(out)
        size = size or (2 * out.shape[-3], 2 * out.shape[-2])
        if tuple(size) != tuple(out.shape[-3:-1]):
            out = resize_bilinear_align_corners(out, size)
        return _conv(self.features, 1, self.dtype, self.param_dtype, "out_conv")(out)


class Scratch(nn.Module):
    """``DPTHead.scratch``: the layer*_rn projections, the four fusion blocks and (VGGT) the output convolutions.
    VGGT's last fusion block upsamples x2 and output_conv1 follows; VGGT-Omega's (``pixel_shuffle``) keeps the 1/4
    resolution and has no output convolutions here."""

    features: int
    feature_only: bool
    output_dim: int
    output: str = "conv"
    inplace_relu: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self):
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        f = self.features
        self.layer_rn = [_conv(f, 3, name=f"layer{i}_rn", use_bias=False, **kw) for i in range(1, 5)]
        self.refinenet = [
            FeatureFusionBlock(f, has_residual=i != 4, inplace_relu=self.inplace_relu, name=f"refinenet{i}", **kw)
            for i in range(1, 5)
        ]
        if self.output == "conv":
            self.output_conv1 = _conv(f if self.feature_only else f // 2, 3, name="output_conv1", **kw)
            if not self.feature_only:
                self.output_conv2_0 = _conv(32, 3, name="output_conv2_0", **kw)
                self.output_conv2_2 = _conv(self.output_dim, 1, name="output_conv2_2", **kw)

    def fuse(self, layers: list[jax.Array]) -> jax.Array:
        l1, l2, l3, l4 = (rn(x) for rn, x in zip(self.layer_rn, layers, strict=True))
        hw = lambda t: t.shape[-3:-1]  # noqa: E731
        out = self.refinenet[3](l4, size=hw(l3))
        out = self.refinenet[2](out, l3, size=hw(l2))
        out = self.refinenet[1](out, l2, size=hw(l1))
        if self.output == "pixel_shuffle":
            return self.refinenet[0](out, l1, size=hw(l1))
        out = self.refinenet[0](out, l1)
        return self.output_conv1(out)

    def output_conv2(self, x: jax.Array) -> jax.Array:
        return self.output_conv2_2(nn.relu(self.output_conv2_0(x)))


class DPTHead(nn.Module):
    """``remat`` (a ``vggt_jax.model.layers.REMAT_POLICIES`` name or "none"): rematerialise each chunk of frames
    when ``frames_chunk_size`` splits them (training memory): the backward pass then keeps only the chunk's input
    tokens and recomputes its activations, so the full-resolution activations of one chunk are alive instead of
    every frame's. Without chunks there is nothing to gain (the recomputation would hold every frame's at once),
    so the head is not rematerialised."""

    config: DPTHeadConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat: str = "none"

    def __call__(
        self,
        tokens: Mapping[int, jax.Array],
        image_hw: tuple[int, int],
        patch_start_idx: int,
        frames_chunk_size: int | None = None,
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """``tokens``: {layer index: [B, S, T, dim_in]} (at least the config's ``intermediate_layer_idx``).

        Returns ``(preds [B, S, H, W, output_dim - 1], conf [B, S, H, W])``, or with ``feature_only`` the
        features ``[B, S, H / down_ratio, W / down_ratio, features]``.

        ``frames_chunk_size``: run the head on at most this many frames at a time (a ``scan`` over chunks of the
        B * S frames, so the full-resolution activations of only one chunk are alive); the frames are independent,
        so the outputs are those of one pass. The chunk is the largest divisor of the frame count not above it (no
        padding). Traced for a training mesh that splits the batch over D devices, the chunks are per device: each
        step runs a chunk of each device's B * S / D frames (``vggt_jax.model.spmd``; a loop over chunks of the
        whole batch would gather every device's tokens onto each).
        """
        cfg = self.config
        layers = [tokens[idx] for idx in cfg.intermediate_layer_idx]
        b, s = layers[0].shape[:2]
        n = b * s
        shards = spmd.num_shards("batch", b)
        local = n // shards
        chunk = frames_chunk(local, frames_chunk_size)
        if chunk == local or self.is_initializing():
            flat = [x.reshape(n, *x.shape[2:]) for x in layers]  # [B * S, T, C]: a free reshape
            out = self.forward_frames(flat, image_hw, patch_start_idx)
        else:
            forward = lambda head, frames: head.forward_frames(frames, image_hw, patch_start_idx)  # noqa: E731
            if self.remat != "none":  # in a scan: XLA cannot merge the recomputation into the forward pass
                forward = nn.remat(forward, policy=remat_policy(self.remat), prevent_cse=False)
            steps = local // chunk
            # [B, S, ...] -> [shards, steps, chunk, ...]: each shard's frames stay on its device (free reshapes).
            split = [x.reshape(shards, steps, chunk, *x.shape[2:]) for x in layers]

            def body(head, carry, i):
                # Each step takes its frames out of the full token arrays: no stacked copy of the layers.
                frames = [jax.lax.dynamic_index_in_dim(x, i, 1, keepdims=False) for x in split]
                return carry, forward(head, [x.reshape(shards * chunk, *x.shape[2:]) for x in frames])

            scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False})
            _, out = scan(self, None, jnp.arange(steps))  # [steps, shards * chunk, ...]
            out = jax.tree_util.tree_map(
                lambda y: jnp.swapaxes(y.reshape(steps, shards, chunk, *y.shape[2:]), 0, 1).reshape(n, *y.shape[2:]),
                out,
            )
        return jax.tree_util.tree_map(lambda y: y.reshape(b, s, *y.shape[1:]), out)

    @nn.compact
    def forward_frames(
        self, tokens: list[jax.Array], image_hw: tuple[int, int], patch_start_idx: int
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """The head on independent frames: ``tokens``, one ``[N, T, dim_in]`` per ``intermediate_layer_idx`` ->
        ``(preds [N, H, W, output_dim - 1], conf [N, H, W])`` or features ``[N, H', W', features]``."""
        cfg = self.config
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        height, width = image_hw
        ph, pw = height // cfg.patch_size, width // cfg.patch_size
        n = tokens[0].shape[0]
        norm = layer_norm(1e-5, self.dtype, self.param_dtype, "norm")
        resize = [
            PatchUpsample(cfg.out_channels[0], 4, name="resize_layers_0", **kw),
            PatchUpsample(cfg.out_channels[1], 2, name="resize_layers_1", **kw),
            lambda x: x,
            _conv(cfg.out_channels[3], 3, stride=2, name="resize_layers_3", **kw),
        ]
        layers = []
        for j, x in enumerate(tokens):
            x = x[:, patch_start_idx:].astype(self.dtype)
            x = norm(x.reshape(n, ph, pw, x.shape[-1]))
            x = _conv(cfg.out_channels[j], 1, name=f"projects_{j}", **kw)(x)
            if cfg.pos_embed:
                x = self._add_pos_embed(x, width / height)
            layers.append(resize[j](x))
            self.sow("intermediates", f"feat{j}", layers[-1])
        if cfg.output not in ("conv", "pixel_shuffle"):
            raise ValueError(f"unknown DPT output {cfg.output!r}; choose 'conv' or 'pixel_shuffle'")
        scratch = Scratch(
            cfg.features, cfg.feature_only, cfg.output_dim, cfg.output, cfg.inplace_relu, name="scratch", **kw
        )
        out = scratch.fuse(layers)
        if cfg.output == "pixel_shuffle":
            self.sow("intermediates", "fused", out)
            return self._pixel_shuffle_output(out, width / height)
        out_hw = (int(ph * cfg.patch_size / cfg.down_ratio), int(pw * cfg.patch_size / cfg.down_ratio))
        out = resize_bilinear_align_corners(out, out_hw)
        if cfg.pos_embed:
            out = self._add_pos_embed(out, width / height)
        if cfg.feature_only:
            return out
        out = scratch.output_conv2(out)
        return activate_head(out, cfg.activation, cfg.conf_activation)

    def _pixel_shuffle_output(self, fused: jax.Array, aspect_ratio: float) -> tuple[jax.Array, jax.Array]:
        """VGGT-Omega's output: fused (+ position embedding) -> ``proj`` and ``proj_conf`` 1x1 convs to r*r channels
        each -> pixel_shuffle(r), r = patch_size / 4: output pixel (r y + i, r x + j) is channel r i + j at (y, x)."""
        cfg = self.config
        if cfg.patch_size % 4 or cfg.output_dim != 2:
            raise ValueError("the pixel-shuffle dense head needs a patch size divisible by 4 and output_dim 2")
        r = cfg.patch_size // 4
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        if cfg.pos_embed:
            fused = self._add_pos_embed(fused, aspect_ratio)
        logits = _conv(r * r, 1, name="proj", **kw)(fused)
        conf_logits = _conv(r * r, 1, name="proj_conf", **kw)(fused)
        self.sow("intermediates", "proj_out", logits)
        self.sow("intermediates", "proj_conf_out", conf_logits)

        def shuffle(x):  # [N, h, w, r*r] -> [N, r h, r w, 1]
            n, h, w, _ = x.shape
            return x.reshape(n, h, w, r, r).transpose(0, 1, 3, 2, 4).reshape(n, h * r, w * r, 1)

        out = jnp.concatenate([shuffle(logits), shuffle(conf_logits)], axis=-1)
        return activate_head(out, cfg.activation, cfg.conf_activation)

    def _add_pos_embed(self, x: jax.Array, aspect_ratio: float) -> jax.Array:
        h, w, c = x.shape[-3:]
        emb = uv_pos_embed(h, w, c, aspect_ratio, np.dtype(x.dtype) if x.dtype != jnp.bfloat16 else np.float32)
        return x + jnp.asarray(emb, x.dtype)


def frames_chunk(frames: int, limit: int | None) -> int:
    """The largest divisor of ``frames`` not above ``limit`` (``frames`` itself without a limit). A symbolic frame
    count (``jax.export`` with a polymorphic frame axis) has one divisor known for every value: 1."""
    if limit is None:
        return frames
    if not isinstance(frames, int):
        return 1
    return max(d for d in range(1, min(frames, limit) + 1) if not frames % d)
