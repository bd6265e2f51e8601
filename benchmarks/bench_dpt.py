"""Where a DPT head's time goes: seconds and GFLOP/s per operation against this machine's matmul peak, and each
3x3 convolution as XLA's convolution against the same convolution written as matmuls.

    python benchmarks/bench_dpt.py --config vggt_1b --frames 2 --size 392x518
    python benchmarks/bench_dpt.py --config tiny --frames 2 --size 56x56 --repeats 1      # a smoke run

The head is VGGT's depth head (the point head has the same shapes). Each row is the head's own flax submodule (or
the resampling it calls) on the shapes the head gives it, jitted alone, timed after a compile and a warm-up run
(median of ``--repeats``), with XLA's FLOP count; the last rows are the sum of the rows and the whole head. The
"as matmuls" column runs the row's 3x3 convolutions as nine shifted ``[N*H*W, C] x [C, O]`` products summed
(im2col without the 9x copy), the alternative #19 asked about. Random weights, float32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stages import matmul_peak, measure  # noqa: E402
from machine import machine_line  # noqa: E402


def conv3x3_as_matmuls(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """``lax.conv`` of a 3x3 kernel ``[3, 3, C, O]`` with padding 1 as the sum of nine shifted matmuls."""
    n, h, w, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    out = 0
    for dy in range(3):
        for dx in range(3):
            window = xp[:, dy : dy + stride * (ho - 1) + 1 : stride, dx : dx + stride * (wo - 1) + 1 : stride]
            out = out + jnp.einsum("nhwc,co->nhwo", window, kernel[dy, dx])
    return out


class AsMatmuls(nn.Module):
    """A 3x3 ``nn.Conv`` (padding 1) with the same parameter shapes, computed by ``conv3x3_as_matmuls``."""

    features: int
    stride: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        y = conv3x3_as_matmuls(x, kernel, self.stride)
        return y + self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else y


def rows_for(cfg, frames: int, height: int, width: int):
    """(name, module or function, input arrays, the same with the 3x3 convs as matmuls or None) per operation."""
    from vggt_jax.model import dpt_head as dpt
    from vggt_jax.model.activations import activate_head
    from vggt_jax.model.resample import resize_bilinear_align_corners

    rng = np.random.default_rng(0)

    def arr(*shape):
        return jnp.asarray(rng.standard_normal(shape), jnp.float32)

    ph, pw = height // cfg.patch_size, width // cfg.patch_size
    f, ch = cfg.features, cfg.out_channels
    level_hw = [(4 * ph, 4 * pw), (2 * ph, 2 * pw), (ph, pw), ((ph + 1) // 2, (pw + 1) // 2)]
    conv = lambda o, k, **kw: dpt._conv(o, k, jnp.float32, jnp.float32, None, **kw)  # noqa: E731
    rows = []

    class Project(nn.Module):
        out: int

        @nn.compact
        def __call__(self, x):
            return conv(self.out, 1)(nn.LayerNorm(1e-5)(x))

    for j in range(4):
        rows.append(
            (
                f"norm + projects_{j} (1x1, {cfg.dim_in}->{ch[j]})",
                Project(ch[j]),
                [arr(frames, ph, pw, cfg.dim_in)],
                None,
            )
        )
    rows.append(
        ("resize_layers_0 (transposed conv x4)", dpt.PatchUpsample(ch[0], 4), [arr(frames, ph, pw, ch[0])], None)
    )
    rows.append(
        ("resize_layers_1 (transposed conv x2)", dpt.PatchUpsample(ch[1], 2), [arr(frames, ph, pw, ch[1])], None)
    )
    rows.append(
        (
            f"resize_layers_3 (3x3 s2, {ch[3]}->{ch[3]})",
            conv(ch[3], 3, stride=2),
            [arr(frames, ph, pw, ch[3])],
            AsMatmuls(ch[3], stride=2),
        )
    )
    for i, (hw, c) in enumerate(zip(level_hw, ch, strict=True)):
        rows.append(
            (
                f"layer{i + 1}_rn (3x3, {c}->{f} at {hw[0]}x{hw[1]})",
                conv(f, 3, use_bias=False),
                [arr(frames, *hw, c)],
                AsMatmuls(f, use_bias=False),
            )
        )

    class Fusion(nn.Module):
        """``FeatureFusionBlock`` with its convolutions swappable for ``AsMatmuls``."""

        residual: bool
        size: tuple[int, int] | None
        matmuls: bool = False

        @nn.compact
        def __call__(self, x0, x1=None):
            c3 = (lambda: AsMatmuls(f)) if self.matmuls else (lambda: conv(f, 3))

            def rcu(x):
                a = nn.relu(x)
                return c3()(nn.relu(c3()(a))) + a

            out = x0 + rcu(x1) if self.residual else x0
            out = rcu(out)
            size = self.size or (2 * out.shape[1], 2 * out.shape[2])
            return conv(f, 1)(resize_bilinear_align_corners(out, size))

    sizes = [None, level_hw[0], level_hw[1], level_hw[2]]  # refinenet1 upsamples x2; the others to the next level
    for i in (3, 2, 1, 0):
        hw = level_hw[i]
        inputs = [arr(frames, *hw, f)] + ([arr(frames, *hw, f)] if i != 3 else [])
        rows.append(
            (
                f"refinenet{i + 1} (RCUs at {hw[0]}x{hw[1]}, upsample, 1x1)",
                Fusion(i != 3, sizes[i]),
                inputs,
                Fusion(i != 3, sizes[i], matmuls=True),
            )
        )
    top = (2 * level_hw[0][0], 2 * level_hw[0][1])
    out1 = f if cfg.feature_only else f // 2
    rows.append(
        (
            f"output_conv1 (3x3, {f}->{out1} at {top[0]}x{top[1]})",
            conv(out1, 3),
            [arr(frames, *top, f)],
            AsMatmuls(out1),
        )
    )
    full = (ph * cfg.patch_size, pw * cfg.patch_size)
    rows.append(
        (
            f"bilinear resize to {full[0]}x{full[1]} ({out1} ch)",
            lambda x: resize_bilinear_align_corners(x, full),
            [arr(frames, *top, out1)],
            None,
        )
    )

    class Output(nn.Module):
        matmuls: bool = False

        @nn.compact
        def __call__(self, x):
            x = x + jnp.asarray(dpt.uv_pos_embed(*x.shape[1:], width / height, np.float32))
            x = (AsMatmuls(32) if self.matmuls else conv(32, 3))(x)
            x = conv(cfg.output_dim, 1)(nn.relu(x))
            return activate_head(x, cfg.activation, cfg.conf_activation)

    rows.append(
        (
            f"pos embed + output_conv2 (3x3 {out1}->32, 1x1) + activation at {full[0]}x{full[1]}",
            Output(),
            [arr(frames, *full, out1)],
            Output(matmuls=True),
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vggt_1b")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", default="392x518", help="HxW")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.split("x"))

    from vggt_jax.config import get_config
    from vggt_jax.model.dpt_head import DPTHead

    cfg = get_config(args.config).depth_head
    peak = matmul_peak()
    print(machine_line() + f", matmul peak {peak:.0f} GFLOP/s (4096^3 float32, XLA)")
    key = jax.random.PRNGKey(0)

    def run(op, inputs):
        if isinstance(op, nn.Module):
            params = op.init(key, *inputs)
            return measure(op.apply, params, *inputs, repeats=args.repeats)
        return measure(op, *inputs, repeats=args.repeats)

    print(f"\n{args.config} depth head, {args.frames} frames of {height}x{width}, float32, {args.repeats} repeats\n")
    print("| operation | s | GFLOP | GFLOP/s | % of peak | as matmuls: s | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total = dict(seconds=0.0, gflop=0.0)
    for name, op, inputs, alternative in rows_for(cfg, args.frames, height, width):
        r = run(op, inputs)
        total = {k: total[k] + r[k] for k in total}
        alt = run(alternative, inputs) if alternative is not None else None
        rate = r["gflop"] / r["seconds"]
        extra = f"{alt['seconds']:.3f} | {alt['seconds'] / r['seconds']:.2f}x" if alt else "- | -"
        print(f"| {name} | {r['seconds']:.3f} | {r['gflop']:.1f} | {rate:.0f} | {100 * rate / peak:.0f}% | {extra} |")
    tokens = {
        i: jnp.zeros((1, args.frames, 5 + (height // 14) * (width // 14), cfg.dim_in))
        for i in cfg.intermediate_layer_idx
    }
    head = DPTHead(cfg)
    params = head.init(key, tokens, (height, width), 5)
    whole = measure(lambda p, t: head.apply(p, t, (height, width), 5), params, tokens, repeats=args.repeats)
    # The model runs its heads one frame at a time by default (VGGTConfig.heads_frames_chunk = 1, a scan): same
    # FLOPs (counted here on the unchunked program: XLA's cost analysis counts a loop body once).
    chunked = measure(
        lambda p, t: head.apply(p, t, (height, width), 5, frames_chunk_size=1),
        params,
        tokens,
        repeats=args.repeats,
        count=lambda p, t: head.apply(p, t, (height, width), 5),
    )
    rows = (("sum of the rows", total), ("whole head", whole), ("whole head, one frame at a time (scan)", chunked))
    for name, r in rows:
        rate = r["gflop"] / r["seconds"]
        print(f"| {name} | {r['seconds']:.3f} | {r['gflop']:.1f} | {rate:.0f} | {100 * rate / peak:.0f}% | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
