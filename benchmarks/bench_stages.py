"""Where the forward's time goes: seconds and achieved GFLOP/s per stage against this machine's matmul peak.

    python benchmarks/bench_stages.py --config vggt_1b --frames 2 --size 392x518
    python benchmarks/bench_stages.py --config vggt_omega_1b --frames 2 --size 384x512
    python benchmarks/bench_stages.py --config tiny --frames 2 --size 56x56 --repeats 1     # seconds, a smoke run

Each stage is its own jitted program on the model's real shapes, timed after a compile and a warm-up run (median
of ``--repeats``), with XLA's own FLOP count (cost analysis) for it:

- the DINO backbone (``aggregator/patch_embed``) alone;
- one frame block and one global block of the aggregator (with their RoPE, as the aggregator calls them), times
  the depth (VGGT-Omega's register-attention layers are counted as global blocks);
- the aggregator's rest: the whole aggregator minus those (tokens, concatenations, layout changes);
- each head: the model with that head minus the model with none (camera, depth, point; ``--queries N``: the track
  head, tracker included, on N queries in frame 0);
- the whole forward, and the sum of the stages against it.

The peak is a jitted 4096^3 float32 matmul on this machine (best of three); the floor is the forward's FLOPs over
it. Every stage runs with the model's attention kernel (``config.attention``, "auto": chunked for long sequences on
CPU) and is counted with the reference one and the heads unchunked (XLA counts a loop's body once: the chunked
attention's and the heads' frame scan's FLOPs would be undercounted). Random weights (the time does not depend on
them). Float32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402


def matmul_peak(n: int = 4096) -> float:
    """GFLOP/s of a jitted n^3 float32 matmul (best of three runs after a warm-up)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = min(_timed(f, a, a) for _ in range(3))
    return 2 * n**3 / best / 1e9


def torch_matmul_peak(n: int = 4096) -> float | None:
    """GFLOP/s of torch's n^3 float32 matmul on the CPU (best of three), or None without torch: the official code's
    kernel, beside XLA's, since a forward at XLA's floor can still trail the official one by their ratio."""
    try:
        import torch
    except ImportError:
        return None
    a = torch.from_numpy(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    torch.mm(a, a)
    best = min(_timed(torch.mm, a, a) for _ in range(3))
    return 2 * n**3 / best / 1e9


def _timed(f, *args) -> float:
    tic = time.perf_counter()
    jax.block_until_ready(f(*args))
    return time.perf_counter() - tic


def measure(fn, *args, repeats: int, count=None) -> dict:
    """Compile ``fn`` on ``args``, run it once, then ``repeats`` times: {seconds (median), gflop, compile}. The FLOPs
    are XLA's count for ``count`` (default ``fn``): the same computation with the reference attention, since the
    cost analysis counts a loop's body once and the chunked attention kernel is loops."""
    tic = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - tic
    cost = jax.jit(count or fn).lower(*args).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    jax.block_until_ready(compiled(*args))
    times = [_timed(compiled, *args) for _ in range(max(repeats, 1))]
    return dict(seconds=statistics.median(times), gflop=float(cost.get("flops", 0.0)) / 1e9, compile=compile_s)


def scoped(fn, attention):
    """``fn`` traced with ``attention`` (an AttentionConfig) as the kernel, as VGGT's modules trace their blocks."""
    from vggt_jax.model.attention import attention_scope

    def run(*args):
        with attention_scope(attention):
            return fn(*args)

    return run


def block_programs(cfg, params, images):
    """(frame block fn, global block fn, their inputs): block 0 of each kind, applied as the aggregator does."""
    from vggt_jax.model.layers import block_class
    from vggt_jax.model.rope import Rope, axial_rope, rope_tables, token_positions

    agg = cfg.aggregator
    b, s, _, height, width = images.shape
    p, c = agg.patch_embed.patch_size, agg.embed_dim
    t = 1 + agg.num_register_tokens + (height // p) * (width // p)
    psi = 1 + agg.num_register_tokens
    if agg.rope_style == "axial":
        rope, global_rope = (
            axial_rope(height // p, width // p, c // agg.num_heads, agg.rope_freq, psi, jnp.float32),
            None,
        )
    else:
        rope = Rope(
            *rope_tables(token_positions(height // p, width // p, psi), c // agg.num_heads, agg.rope_freq, jnp.float32)
        )
        global_rope = rope.tile(s)
    block = block_class("none")(
        c, agg.num_heads, agg.mlp_ratio, init_values=agg.init_values, qk_norm=agg.qk_norm, mask_k_bias=agg.mask_k_bias
    )
    tokens = jnp.asarray(np.random.default_rng(0).standard_normal((b, s, t, c)), jnp.float32)
    frame_params = {"params": params["params"]["aggregator"]["frame_blocks_0"]}
    global_params = {"params": params["params"]["aggregator"]["global_blocks_0"]}

    def frame_fn(bp, x):
        return block.apply(bp, x.reshape(b * s, t, c), rope)

    def global_fn(bp, x):
        return block.apply(bp, x.reshape(b, s * t, c), global_rope)

    return (frame_fn, frame_params, tokens), (global_fn, global_params, tokens)


def stage_table(config_name: str, frames: int, height: int, width: int, queries: int, repeats: int) -> list[dict]:
    from vggt_jax.config import get_config
    from vggt_jax.model.dino import DinoVisionTransformer
    from vggt_jax.model.random_init import random_params
    from vggt_jax.model.vggt import VGGT

    cfg = get_config(config_name)
    if queries and cfg.track_head is None:
        raise SystemExit(f"--queries: {config_name} has no track head")
    images = jnp.asarray(np.random.default_rng(0).uniform(size=(1, frames, 3, height, width)), jnp.float32)
    params = random_params(VGGT(cfg), jax.ShapeDtypeStruct((1, 2, 3, height, width), jnp.float32))
    heads = {"camera": "camera_head", "depth": "depth_head", "point": "point_head"}
    present = [k for k, v in heads.items() if getattr(cfg, v) is not None]
    none = cfg.replace(**{v: None for v in heads.values()}, track_head=None, text_head=None)

    def model_fn(c, with_queries=False):
        """(fn, its params, fn with the reference attention for the FLOP count)."""
        fn, sub = _model_fn(c, with_queries)
        # Counted with the reference attention and the heads unchunked: XLA's cost analysis counts a loop body once,
        # and both the chunked attention kernel and the heads' frame chunks (heads_frames_chunk) are loops.
        return fn, sub, _model_fn(c.replace(attention="xla", heads_frames_chunk=0), with_queries)[0]

    def _model_fn(c, with_queries=False):
        model = VGGT(c)
        keys = ["aggregator"] + [heads[k] for k in heads if getattr(c, heads[k]) is not None]
        keys += ["track_head"] if c.track_head is not None else []
        sub = {"params": {k: params["params"][k] for k in keys}}
        q = jnp.asarray(np.random.default_rng(1).uniform(0, min(height, width), (1, queries, 2)), jnp.float32)
        fn = (lambda pr, x: model.apply(pr, x, q)) if with_queries else (lambda pr, x: model.apply(pr, x))
        return fn, sub

    from vggt_jax.model.attention import AttentionConfig
    from vggt_jax.model.vggt import attention_config

    reference, ours = AttentionConfig("xla"), attention_config(cfg)
    rows = []
    dino = DinoVisionTransformer(cfg.aggregator.patch_embed)
    dino_params = {"params": params["params"]["aggregator"]["patch_embed"]}
    nhwc = images.reshape(frames, 3, height, width).transpose(0, 2, 3, 1)
    dino_s = measure(scoped(dino.apply, ours), dino_params, nhwc, repeats=repeats, count=scoped(dino.apply, reference))
    rows.append(dict(stage="DINO backbone", **dino_s))
    (ff, fp, fx), (gf, gp, gx) = block_programs(cfg, params, images)
    depth = cfg.aggregator.depth
    for name, fn, bp, x in (("frame blocks", ff, fp, fx), ("global blocks", gf, gp, gx)):
        one = measure(scoped(fn, ours), bp, x, repeats=repeats, count=scoped(fn, reference))
        rows.append(
            dict(
                stage=f"{name} ({depth} x 1)",
                seconds=one["seconds"] * depth,
                gflop=one["gflop"] * depth,
                compile=one["compile"],
            )
        )

    def timed(c, with_queries=False) -> dict:
        fn, sub, count = model_fn(c, with_queries)
        return measure(fn, sub, images, repeats=repeats, count=count)

    def difference(stage: str, with_stage: dict, without: dict) -> dict:
        diff = {k: with_stage[k] - without[k] for k in ("seconds", "gflop")}
        return dict(stage=stage, compile=with_stage["compile"], **diff)

    agg = timed(none)
    rest = {k: agg[k] - sum(r[k] for r in rows) for k in ("seconds", "gflop")}
    rows.append(dict(stage="aggregator rest", compile=float("nan"), **rest))
    for head in present:
        with_head = timed(none.replace(**{heads[head]: getattr(cfg, heads[head])}))
        rows.append(difference(f"{head} head", with_head, agg))
    full = timed(cfg.replace(track_head=None))
    if queries:
        tracked = timed(cfg, with_queries=True)
        rows.append(difference(f"track head ({queries} queries)", tracked, full))
        full = tracked
    rows.append(
        dict(
            stage="sum of the stages",
            compile=float("nan"),
            seconds=sum(r["seconds"] for r in rows),
            gflop=sum(r["gflop"] for r in rows),
        )
    )
    rows.append(dict(stage="whole forward", **full))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vggt_1b")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", default="392x518", help="HxW")
    parser.add_argument("--queries", type=int, default=0, help="also time the track head on this many queries")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.split("x"))
    peak = matmul_peak()
    rows = stage_table(args.config, args.frames, height, width, args.queries, args.repeats)
    total = rows[-1]
    torch_peak = torch_matmul_peak()
    torch_line = f"; torch's: {torch_peak:.0f} GFLOP/s ({torch_peak / peak:.2f}x)" if torch_peak else ""
    print(machine_line() + f", matmul peak {peak:.0f} GFLOP/s (4096^3 float32, XLA){torch_line}")
    print(f"{args.config}, {args.frames} frames {args.size}, float32, random weights; floor = FLOPs / peak\n")
    print("| stage | time (s) | share | GFLOP | GFLOP/s | of peak | compile (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        rate = r["gflop"] / r["seconds"] if r["seconds"] > 0 else float("nan")
        print(
            f"| {r['stage']} | {r['seconds']:.2f} | {r['seconds'] / total['seconds']:.0%} | {r['gflop']:.0f} | "
            f"{rate:.0f} | {rate / peak:.0%} | {r['compile']:.1f} |"
        )
    floor = total["gflop"] / peak
    print(f"\nfloor {floor:.2f} s; the forward takes {total['seconds'] / floor:.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
