"""One lent GPU's session: the 1B forward from 1 to 1000 frames in bf16 and fp32, attention backends compared, the
official model in the same run where it fits, peak device memory; one JSON and one markdown table in ``--out``.

    python benchmarks/gpu_session.py --out $OUT [--torch-ref CHECKOUT] [--config vggt_1b] [--budget-s 450]
    python benchmarks/gpu_session.py --dry-run --out /tmp/gpu_dry     # CPU: the micro model at two sizes (CI)

It needs only what a lent H200 has preinstalled (jax with CUDA, flax, numpy; torch for the official model; the
exported model's check needs flatbuffers and reports its ImportError where it is missing) and runs this
checkout's vggt_jax without installing it. Second in the plan, the lowering matrix's cuda cases are compiled on
the device and compared with what the matrix expected, and the exported model is written, loaded and run
(``child_checks``).
``--torch-ref`` is a checkout of facebookresearch/vggt (or of facebookresearch/vggt-omega with ``--config
vggt_omega_1b``) carried beside the repository as an ignored folder.

The plan is a list of series, most important first; each series is one fresh process (so its peak memory is its
own) that measures its frame counts in ascending order. Before each measurement the series estimates its cost from
the previous one (time quadratic in frames, the global attention's order) and skips it when it would not end
before ``--budget-s``; the first out-of-memory ends the series and is recorded as the largest size that does not
fit. Results are written after every series, so a session cut short still leaves everything measured before.
Per measurement: compile (ours), the first forward, the median of up to 3 more (none when the first took > 20 s),
peak device memory beyond the weights (ours: the allocator's peak; official: torch's, reset per size) and XLA's own
count of the program's temporaries. Weights are random (time and memory do not depend on them); inputs are
392x518 (VGGT's width; Omega 384x512), no track queries (the official benchmark's setting).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time

GB = 1024**3
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(REPO, "vggt_jax")) and REPO not in sys.path:
    sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_infer import OFFICIAL_MODELS, _fmt, official_model  # noqa: E402
from machine import machine_line  # noqa: E402

SINGLE_RUN_S = 20.0  # a first forward longer than this is not repeated (its one-time overhead is then negligible)


@dataclasses.dataclass(frozen=True)
class Series:
    impl: str  # "jax" (ours) or "torch" (the official model)
    dtype: str  # "bfloat16" or "float32" (torch: bf16 autocast, as the official inference recipe)
    attention: str  # ours: vggt_jax.model.attention implementation; torch: "sdpa"
    frames: tuple[int, ...]


def plan(dry_run: bool, torch_ref: str | None) -> list[Series]:
    """The series in priority order: the targets first (200 frames bf16 against the official model, 1000 frames on
    one device), then fp32 and the attention backends side by side."""
    checks = Series("checks", "bfloat16", "auto", (2, 5))  # the lowering matrix on the device, the exported model
    if dry_run:
        # Every code path once: both dtypes, two sizes, a second attention backend, the official model's series.
        series = [Series("jax", "bfloat16", "auto", (1, 2)), checks, Series("jax", "float32", "chunked", (2,))]
        official = [Series("torch", "bfloat16", "sdpa", (1, 2))]
    else:
        series = [
            Series("jax", "bfloat16", "auto", (1, 10, 50, 100, 200)),
            checks,
            Series("jax", "bfloat16", "auto", (500, 1000)),
            Series("jax", "float32", "auto", (1, 10, 100, 200)),
            Series("jax", "bfloat16", "chunked", (10, 100, 200)),
            Series("jax", "bfloat16", "xla", (10, 100)),
        ]
        official = [
            Series("torch", "bfloat16", "sdpa", (1, 10, 50, 100, 200)),
            Series("torch", "float32", "sdpa", (100,)),
        ]
    if not torch_ref:
        return series
    # The official bf16 series right after ours, so the headline comparison is measured before anything optional.
    return [series[0], official[0], *series[1:], *official[1:]]


# ------------------------------------------------------------------------------------------------------ children
class Clock:
    """Skips a measurement whose estimated cost would run past the deadline."""

    def __init__(self, deadline: float):
        self.deadline, self.last = deadline, None  # last: (frames, seconds of one forward, compile seconds)

    def skip(self, frames: int) -> str | None:
        left = self.deadline - time.time()
        if self.last is None:
            return None if left > 0 else "no time left"
        n, forward_s, compile_s = self.last
        one = forward_s * max(1.0, (frames / n) ** 2)
        estimate = compile_s + one * (1 if one > SINGLE_RUN_S else 4)
        return f"estimated {estimate:.0f} s, {left:.0f} s left" if estimate > left else None


def _timed(fn) -> tuple[float, list[float]]:
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    walls = []
    for _ in range(0 if first > SINGLE_RUN_S else 3):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    return first, walls


def _is_oom(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return "resource_exhausted" in text or "out of memory" in text or "outofmemory" in text


def emit(record: dict) -> None:
    print("RESULT " + json.dumps(record), flush=True)


def child_jax(series: Series, args) -> None:
    import jax
    import jax.numpy as jnp

    from vggt_jax.config import get_config
    from vggt_jax.model.layout import with_scan_layers
    from vggt_jax.model.random_init import random_params
    from vggt_jax.model.vggt import VGGT

    overrides = json.loads(args.overrides)
    cfg = get_config(args.config).replace(dtype=series.dtype, attention=series.attention, **overrides)
    cfg = with_scan_layers(cfg, args.layout == "scan")
    model = VGGT(cfg)
    p = cfg.patch_size
    params = random_params(model, jax.ShapeDtypeStruct((1, 2, 3, 10 * p, 10 * p), jnp.float32))
    params = jax.block_until_ready(jax.device_put(params))
    device = jax.local_devices()[0]

    def in_use() -> tuple[int, int]:
        stats = device.memory_stats() or {}
        return stats.get("bytes_in_use", 0), stats.get("peak_bytes_in_use", 0)

    weights = in_use()[0]
    clock = Clock(args.deadline)
    key = jax.random.key(0)
    for n in series.frames:
        record = dict(frames=n)
        reason = clock.skip(n)
        if reason:
            emit({**record, "skipped": reason})
            continue
        try:
            images = jax.random.uniform(key, (1, n, 3, args.height, args.width), jnp.dtype(cfg.dtype))
            t = time.perf_counter()
            compiled = jax.jit(model.apply).lower(params, images).compile()
            compile_s = time.perf_counter() - t
            analysis = compiled.memory_analysis()

            def forward(compiled=compiled, images=images):
                jax.block_until_ready(compiled(params, images))

            first, walls = _timed(forward)
        except Exception as error:  # noqa: BLE001 - out of memory ends the series; anything else is reported
            emit({**record, ("oom" if _is_oom(error) else "error"): str(error).splitlines()[0][:300]})
            if _is_oom(error):
                return
            continue
        time_s = statistics.median(walls) if walls else first
        clock.last = (n, time_s, compile_s)
        emit(
            {
                **record,
                "compile_s": compile_s,
                "first_s": first,
                "time_s": time_s,
                "runs": len(walls) or 1,
                "peak_gb": (in_use()[1] - weights) / GB if device.platform != "cpu" else None,
                "xla_temp_gb": getattr(analysis, "temp_size_in_bytes", 0) / GB if analysis is not None else None,
                "device": device.device_kind,
            }
        )
        del images, compiled


def child_checks(series: Series, args) -> None:
    """What the lowering matrix checked without a device, against what this device compiles: each forward case of
        the matrix for this platform lowered and checked as in CI, then compiled here and its fused attention kernels
        read from the compiled program. Then the exported model (the tiny config, or the session's if smaller; random
    weights, symbolic frames): written,
        loaded and run at ``series.frames`` frame counts, against the jitted model. Without an accelerator (the dry
        run) the cuda cases are lowered and checked but not compiled."""
    import re
    import tempfile

    import jax
    import jax.numpy as jnp
    import numpy as np

    from vggt_jax.config import get_config
    from vggt_jax.export import artifact, matrix
    from vggt_jax.export.build import export_model
    from vggt_jax.model.random_init import random_params
    from vggt_jax.model.vggt import VGGT

    platform = artifact.current_platform()
    target = platform if platform in matrix.BACKENDS else "cuda"
    for case in (c for c in matrix.cases((args.config,), ("forward",)) if c.platform == target):
        record = dict(check=case.name, expected=matrix.expected_kernel(case) or "none")
        try:
            result = matrix.lower_forward(case)
            record["lowering_check"] = "; ".join(matrix.check(result)) or "ok"
            if platform == target:
                text = result.lowered.compile().as_text()
                fused = {"cudnn"} if re.search(r"__cudnn\$fmha", text) else set()
                fused |= {"splash"} if "tpu_custom_call" in text else set()
                record["compiled"] = ",".join(sorted(fused)) or "none"
                record["agree"] = record["compiled"] == record["expected"]
            else:
                record["compiled"] = f"not compiled ({platform})"
        except Exception as error:  # noqa: BLE001 - reported per case
            record["error"] = str(error).splitlines()[0][:300]
        emit(record)
    small = args.config if "micro" in args.config or "tiny" in args.config else None
    small = small or ("omega_tiny" if get_config(args.config).family == "vggt_omega" else "tiny")
    cfg = get_config(small)
    p = cfg.patch_size
    hw = (6 * p, 8 * p)
    params = random_params(VGGT(cfg), jax.ShapeDtypeStruct((1, 2, 3, 10 * p, 10 * p), jnp.float32))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = export_model(cfg, params, os.path.join(tmp, "exported"), platforms=(platform,), image_hw=hw)
        export_s = time.perf_counter() - t
        size_mb = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)) / 1e6
        t = time.perf_counter()
        model = artifact.load(out)
        load_s = time.perf_counter() - t
        reference = VGGT(cfg.replace(dtype=model.dtype))
        images = np.random.default_rng(0).random((max(series.frames), 3, *hw), dtype=np.float32)
        for n in series.frames:
            t = time.perf_counter()
            got = model(images[:n])
            first = time.perf_counter() - t
            want = jax.jit(reference.apply)(params, jnp.asarray(images[None, :n], jnp.dtype(model.dtype)))
            diff = float(np.max(np.abs(got["depth"] - np.asarray(want["depth"][0], np.float32))))
            emit(
                dict(
                    check=f"exported {small} {platform} {model.dtype}",
                    frames=n,
                    export_s=export_s,
                    size_mb=size_mb,
                    load_s=load_s,
                    first_s=first,
                    depth_max_abs_diff=diff,
                )
            )


def official_config(config: str) -> str:
    """The official model a variant is compared with: its own, or (the dry run's micro model, other small
    variants) the 1B model of its family."""
    from vggt_jax.config import get_config

    if config in OFFICIAL_MODELS:
        return config
    return "vggt_omega_1b" if get_config(config).family == "vggt_omega" else "vggt_1b"


def child_torch(series: Series, args) -> None:
    import torch

    sys.path.insert(0, os.path.abspath(args.torch_ref))
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    model = official_model(official_config(args.config), args.torch_ref).eval().to(dev)
    weights = torch.cuda.memory_allocated() if cuda else 0
    clock = Clock(args.deadline)
    generator = torch.Generator(device=dev).manual_seed(0)
    for n in series.frames:
        record = dict(frames=n)
        reason = clock.skip(n)
        if reason:
            emit({**record, "skipped": reason})
            continue
        images = None
        try:
            images = torch.rand((1, n, 3, args.height, args.width), generator=generator, device=dev)
            if cuda:
                torch.cuda.reset_peak_memory_stats()

            def forward(images=images):
                with torch.no_grad(), torch.autocast(dev.type, torch.bfloat16, enabled=series.dtype == "bfloat16"):
                    out = model(images)
                if cuda:
                    torch.cuda.synchronize()
                del out

            first, walls = _timed(forward)
        except Exception as error:  # noqa: BLE001
            images = None
            emit({**record, ("oom" if _is_oom(error) else "error"): str(error).splitlines()[0][:300]})
            if _is_oom(error):
                return
            continue
        time_s = statistics.median(walls) if walls else first
        clock.last = (n, time_s, 0.0)
        peak = (torch.cuda.max_memory_allocated() - weights) / GB if cuda else None
        emit(dict(**record, compile_s=None, first_s=first, time_s=time_s, runs=len(walls) or 1, peak_gb=peak))
        images = None


# -------------------------------------------------------------------------------------------------------- parent
def run_series(series: Series, args) -> list[dict]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(dataclasses.asdict(series))]
    cmd += ["--config", args.config, "--height", str(args.height), "--width", str(args.width)]
    cmd += ["--layout", args.layout, "--overrides", args.overrides, "--deadline", str(args.deadline)]
    if args.torch_ref:
        cmd += ["--torch-ref", args.torch_ref]
    head = dict(impl=series.impl, dtype=series.dtype, attention=series.attention)
    t = time.perf_counter()
    stdout, tail = "", ""
    try:
        # A series past the deadline is stopped (a forward that hangs, a compile far over its estimate).
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, args.deadline - time.time() + 60))
        stdout, tail, failed = proc.stdout, proc.stderr, proc.returncode != 0
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout or ""
        tail, failed = "stopped at the session's deadline", True
    records = [{**head, **json.loads(line[7:])} for line in stdout.splitlines() if line.startswith("RESULT ")]
    done = {r.get("frames") for r in records}
    if failed:
        reason = (tail.strip().splitlines() or ["no output"])[-1][:300]
        records += [{**head, "frames": n, "error": reason} for n in series.frames if n not in done][:1]
    for r in records:
        r["series_s"] = time.perf_counter() - t
    return records


def environment() -> dict:
    env = dict(machine=machine_line(), python=platform.python_version())
    for name in ("jax", "jaxlib", "flax", "torch", "numpy"):
        try:
            env[name] = __import__(name).__version__
        except ImportError:
            env[name] = None
    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        env["gpu"] = gpu.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["gpu"] = None
    return env


def status(r: dict) -> str:
    for key in ("oom", "skipped", "error"):
        if key in r:
            return "out of memory" if key == "oom" else f"{key}: {r[key]}"
    return "ok" if r["runs"] > 1 else "ok (one run)"


def table(records: list[dict], env: dict, args) -> str:
    lines = [
        f"GPU session, config {args.config}, inputs {args.height}x{args.width}, layout {args.layout}",
        f"{env['machine']}; GPU {env['gpu'] or '-'}; jax {env['jax']} jaxlib {env['jaxlib']} torch {env['torch']}",
        "",
        "| impl | dtype | attention | frames | compile (s) | first (s) | time (s) | frames/s "
        "| peak beyond weights (GB) | XLA temp (GB) | status |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in records:
        if r["impl"] == "checks":
            continue
        ok = "time_s" in r
        fps = r["frames"] / r["time_s"] if ok and r["time_s"] else None
        impl = "ours" if r["impl"] == "jax" else "official"
        lines.append(
            f"| {impl} | {r['dtype']} | {r['attention']} | {r['frames']} | {_fmt(r.get('compile_s'), '.1f')} | "
            f"{_fmt(r.get('first_s'))} | {_fmt(r.get('time_s'), '.3f')} | {_fmt(fps, '.1f')} | "
            f"{_fmt(r.get('peak_gb'))} | {_fmt(r.get('xla_temp_gb'))} | {status(r)} |"
        )
    lines += checks_table(records)
    ratios = ratio_rows(records)
    if ratios:
        lines += [
            "",
            "| dtype | frames | time ours / official | peak ours / official |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [f"| {d} | {n} | {_fmt(t)} | {_fmt(m)} |" for d, n, t, m in ratios]
    return "\n".join(lines)


def checks_table(records: list[dict]) -> list[str]:
    """The lowering matrix's expectation against the device's compiled program; the exported model's run."""
    checks = [r for r in records if r["impl"] == "checks"]
    if not checks:
        return []
    lines = ["", "| check | frames | fused kernel expected | lowering check | compiled here | agree / result |"]
    lines.append("| --- | ---: | --- | --- | --- | --- |")
    for r in checks:
        if "depth_max_abs_diff" in r:
            result = (
                f"export {r['export_s']:.1f} s, {r['size_mb']:.0f} MB, load {r['load_s']:.1f} s, first call "
                f"{r['first_s']:.1f} s, depth max diff {r['depth_max_abs_diff']:.1e}"
            )
            lines.append(f"| {r['check']} | {r['frames']} | - | - | - | {result} |")
        else:
            result = r.get("error") or str(r.get("agree", "-"))
            lines.append(
                f"| {r.get('check', '-')} | - | {r.get('expected', '-')} | {r.get('lowering_check', '-')} | "
                f"{r.get('compiled', '-')} | {result} |"
            )
    return lines


def ratio_rows(records: list[dict]) -> list[tuple]:
    """Ours (attention "auto", the default) against the official model at the same dtype and frame count."""
    ours = {(r["dtype"], r["frames"]): r for r in records if r["impl"] == "jax" and r["attention"] == "auto"}
    rows = []
    for r in records:
        o = ours.get((r["dtype"], r.get("frames")))
        if r["impl"] == "torch" and o and "time_s" in r and "time_s" in o:
            peak = o["peak_gb"] / r["peak_gb"] if o.get("peak_gb") and r.get("peak_gb") else None
            rows.append((r["dtype"], r["frames"], o["time_s"] / r["time_s"], peak))
    return rows


def write(path: str, text: str) -> None:
    """Whole or not at all: a session stopped mid-write keeps the previous complete file."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_session.json and gpu_session.md")
    ap.add_argument("--config", default=None, help="model variant (default vggt_1b; micro with --dry-run)")
    ap.add_argument("--torch-ref", default=None, help="checkout of the official code, run in the same session")
    ap.add_argument("--dry-run", action="store_true", help="CPU: the micro model, two small sizes")
    ap.add_argument("--budget-s", type=float, default=None, help="seconds for the whole session (default 450)")
    ap.add_argument("--height", type=int, default=None, help="input height (default 392x518; Omega 384x512)")
    ap.add_argument("--layout", default="scan", choices=("scan", "unrolled"), help="ours: block parameter layout")
    ap.add_argument(
        "--overrides", default="{}", help="JSON of VGGTConfig fields for ours, e.g. '{\"heads_frames_chunk\": 4}'"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--width", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.config = args.config or ("micro" if args.dry_run else "vggt_1b")
    from vggt_jax.config import get_config

    cfg = get_config(args.config)
    # VGGT's 518 px wide 4:3 frames; VGGT-Omega's (16 px patches) 512; the dry run's 2 x 3 patches.
    default = (2 * cfg.patch_size, 3 * cfg.patch_size) if args.dry_run else (392, 518)
    if cfg.family == "vggt_omega" and not args.dry_run:
        default = (384, 512)
    args.height, args.width = args.height or default[0], args.width or default[1]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        series = Series(**{k: tuple(v) if k == "frames" else v for k, v in json.loads(args.child).items()})
        {"jax": child_jax, "torch": child_torch, "checks": child_checks}[series.impl](series, args)
        return
    if not args.out:
        raise SystemExit("--out FOLDER is needed (or $OUT): the session writes gpu_session.json and gpu_session.md")
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    args.deadline = start + (args.budget_s or (300 if args.dry_run else 450))
    env = environment()
    records: list[dict] = []
    for series in plan(args.dry_run, args.torch_ref):
        records += run_series(series, args)
        text = table(records, env, args)
        result = dict(argv=sys.argv, environment=env, records=records, seconds=time.time() - start)
        write(os.path.join(args.out, "gpu_session.json"), json.dumps(result, indent=1))
        write(os.path.join(args.out, "gpu_session.md"), text + "\n")
        print(f"[{series.impl} {series.dtype} {series.attention}] {time.time() - start:.0f} s", file=sys.stderr)
    print(text)


if __name__ == "__main__":
    main()
