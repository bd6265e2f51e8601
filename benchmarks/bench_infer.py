"""Inference speed and memory of vggt_jax, optionally side by side with the official PyTorch VGGT.

    python benchmarks/bench_infer.py --frames 2,4,8 --sizes 392x518 --torch-ref /path/to/vggt --json out.json

For every (frames, size) it measures, each in a fresh subprocess so peak memory is per measurement:
  compile   time to trace, lower and compile the forward (XLA; the official model has nothing to compile),
  time      median of ``--repeats`` steady-state forwards after one warm-up forward, and their CPU seconds,
  peak      peak memory of the forwards beyond the memory held once the weights are loaded: peak RSS minus RSS on
            CPU (the kernel's high-water mark, reset after loading and compiling), peak minus in-use device memory
            on GPU,
  xla temp  XLA's own count of the temporary buffers of the compiled program (jax only),
  load      the machine's 1-minute load average during the timed forwards (on a shared machine it moves the times).
With ``--torch-ref PATH`` (a checkout of facebookresearch/vggt, or of facebookresearch/vggt-omega with
``--config vggt_omega_1b``) the official model runs in the same invocation,
alternating with ours, and the table gets the ratios ours / official. ``--rounds`` repeats the alternation and keeps
the median, which evens out a machine shared with other work. Weights are random (timing does not depend on them).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

GB = 1024**3
LOADS: list[float] = []
# Run the checkout this script belongs to, not whichever vggt_jax happens to be installed.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(REPO, "vggt_jax")) and REPO not in sys.path:
    sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_info, machine_line  # noqa: E402


# ---------------------------------------------------------------------------------------------------- memory probes
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_bytes() -> int:
    return _status_kb("VmRSS") * 1024


def peak_rss_bytes() -> int:
    return _status_kb("VmHWM") * 1024


def reset_peak_rss() -> None:
    """Release freed heap to the OS, then reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0),
    so the next peak is the forward's alone (not the init's or the compiler's)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class Meter:
    """Peak memory beyond a baseline: host RSS on CPU, device memory on GPU."""

    def __init__(self, backend: str, device_stats=None, device_reset=None):
        self.backend, self.device_stats, self.device_reset = backend, device_stats, device_reset

    def start(self) -> None:
        if self.backend == "cpu":
            reset_peak_rss()
            self.base = rss_bytes()
        else:
            self.device_reset()
            self.base = self.device_stats()[0]

    def peak(self) -> int:
        if self.backend == "cpu":
            return peak_rss_bytes() - self.base
        return self.device_stats()[1] - self.base


# ------------------------------------------------------------------------------------------------------- children
def _timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each call; also records the machine's 1-minute load average before each call
    (``LOADS``), since a shared machine's load moves the wall time of either implementation."""
    walls, cpus = [], []
    for _ in range(repeats):
        LOADS.append(os.getloadavg()[0])
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return walls, cpus


def _inputs(frames: int, height: int, width: int, queries: int):
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(1, frames, 3, height, width)).astype(np.float32)
    points = None
    if queries:
        points = (rng.uniform(size=(1, queries, 2)) * [width - 1, height - 1]).astype(np.float32)
    return images, points


def child_jax(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from vggt_jax.config import get_config
    from vggt_jax.model.random_init import random_params
    from vggt_jax.model.vggt import VGGT

    if args.compilation_cache:
        # The persistent cache the Predictor enables: a second process loads the compiled program from disk.
        jax.config.update("jax_compilation_cache_dir", args.compilation_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    overrides = json.loads(args.overrides)
    cfg = get_config(args.config).replace(dtype=args.dtype, **overrides)
    model = VGGT(cfg)
    images, points = _inputs(args.frames_n, args.height, args.width, args.queries)
    t = time.perf_counter()
    # Parameter shapes do not depend on the input size: two small frames (10 x 10 patches, enough for the 1B
    # tracker's 7-level correlation pyramid) and one query.
    p = cfg.patch_size
    params = random_params(model, jnp.zeros((1, 2, 3, 10 * p, 10 * p)), jnp.zeros((1, 1, 2)))
    init_s = time.perf_counter() - t
    weights_rss = rss_bytes()

    images = jnp.asarray(images, jnp.dtype(cfg.dtype))
    points = None if points is None else jnp.asarray(points)
    t = time.perf_counter()
    compiled = jax.jit(model.apply).lower(params, images, points).compile()
    compile_s = time.perf_counter() - t
    analysis = compiled.memory_analysis()
    xla_temp = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None

    backend = jax.default_backend()
    device = jax.local_devices()[0]

    def device_stats():
        stats = device.memory_stats() or {}
        return stats.get("bytes_in_use", 0), stats.get("peak_bytes_in_use", 0)

    meter = Meter(backend, device_stats, lambda: None)
    meter.start()

    def forward():
        out = compiled(params, images, points)
        jax.block_until_ready(out)
        del out

    walls = cpus = []
    if not args.compile_only:
        forward()  # warm-up (first-touch page faults, thread pools); its peak memory counts, its time does not
        walls, cpus = _timed(forward, args.repeats)
    params_bytes = sum(np.dtype(x.dtype).itemsize * x.size for x in jax.tree_util.tree_leaves(params))
    return dict(
        init_s=init_s,
        compile_s=compile_s,
        walls=walls,
        cpus=cpus,
        peak_bytes=None if args.compile_only else meter.peak(),
        weights_rss_bytes=weights_rss,
        params_bytes=int(params_bytes),
        xla_temp_bytes=xla_temp,
        load_avg=LOADS,
        backend=backend,
        device=str(device.device_kind),
    )


# Our variant -> the official constructor it corresponds to (random weights: timing does not depend on them).
OFFICIAL_MODELS = {
    "vggt_1b": ("vggt.models.vggt", "VGGT", {}),
    "vggt_omega_1b": ("vggt_omega.models.vggt_omega", "VGGTOmega", {}),
    "vggt_omega_1b_text": ("vggt_omega.models.vggt_omega", "VGGTOmega", {"enable_alignment": True}),
}


def official_model(config: str, checkout: str):
    """The official model for ``config`` from a checkout of facebookresearch/vggt (vggt_1b) or
    facebookresearch/vggt-omega (the Omega variants); names the checkout needed when the package is not there."""
    import importlib

    module, cls, kwargs = OFFICIAL_MODELS[config]
    package = module.split(".")[0]
    if not os.path.isdir(os.path.join(checkout, package)):
        repo = "facebookresearch/vggt-omega" if package == "vggt_omega" else "facebookresearch/vggt"
        raise SystemExit(
            f"--torch-ref {checkout} has no {package}/ package: --config {config} needs a checkout of {repo}"
        )
    return getattr(importlib.import_module(module), cls)(**kwargs)


def child_torch(args) -> dict:
    import torch

    sys.path.insert(0, os.path.abspath(args.torch_ref))
    if args.config not in OFFICIAL_MODELS:
        raise SystemExit(f"--torch-ref builds the official models of --config {' / '.join(OFFICIAL_MODELS)} only")
    omega = args.config.startswith("vggt_omega")
    if omega and args.queries:
        raise SystemExit("VGGT-Omega has no track head: --queries 0")
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    t = time.perf_counter()
    model = official_model(args.config, args.torch_ref).eval().to(dev)
    init_s = time.perf_counter() - t
    weights_rss = rss_bytes()
    images, points = _inputs(args.frames_n, args.height, args.width, args.queries)
    images = torch.from_numpy(images).to(dev)
    points = None if points is None else torch.from_numpy(points).to(dev)
    autocast = args.dtype == "bfloat16"

    def stats():
        return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()

    meter = Meter("gpu" if cuda else "cpu", stats, torch.cuda.reset_peak_memory_stats)
    meter.start()

    def forward():
        # The official inference recipe: no_grad, and bf16 autocast when asked (its heads opt out of autocast).
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(images) if omega else model(images, points)
        if cuda:
            torch.cuda.synchronize()
        del out

    forward()
    walls, cpus = _timed(forward, args.repeats)
    return dict(
        init_s=init_s,
        compile_s=None,
        walls=walls,
        cpus=cpus,
        peak_bytes=meter.peak(),
        weights_rss_bytes=weights_rss,
        params_bytes=int(sum(p.numel() * p.element_size() for p in model.parameters())),
        xla_temp_bytes=None,
        load_avg=LOADS,
        backend=dev.type,
        device=torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        torch_threads=torch.get_num_threads(),
    )


# --------------------------------------------------------------------------------------------------------- parent
def run_child(impl: str, frames: int, size: tuple[int, int], args) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        impl,
        "--frames",
        str(frames),
        "--sizes",
        f"{size[0]}x{size[1]}",
        "--config",
        args.config,
        "--dtype",
        args.dtype,
        "--queries",
        str(args.queries),
        "--repeats",
        str(args.repeats),
        "--overrides",
        args.overrides,
    ]
    if args.compile_only:
        cmd.append("--compile-only")
    if args.compilation_cache:
        cmd += ["--compilation-cache", args.compilation_cache]
    if args.torch_ref:
        cmd += ["--torch-ref", args.torch_ref]
    record = dict(impl=impl, frames=frames, height=size[0], width=size[1], queries=args.queries, dtype=args.dtype)
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {**record, "error": f"timed out after {args.timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**record, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["process_s"] = time.perf_counter() - t
    return {**record, **result}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(records: list[dict]) -> list[dict]:
    """One row per (impl, frames, size): medians over rounds of the per-round medians."""
    rows = {}
    for r in records:
        key = (r["impl"], r["frames"], r["height"], r["width"])
        rows.setdefault(key, []).append(r)
    out = []
    for (impl, frames, height, width), rs in rows.items():
        ok = [r for r in rs if "error" not in r]
        row = dict(impl=impl, frames=frames, height=height, width=width, rounds=len(ok))
        if not ok:
            row["error"] = rs[-1]["error"]
        else:
            row.update(
                compile_s=_median([r["compile_s"] for r in ok]),
                time_s=_median([statistics.median(r["walls"]) if r["walls"] else None for r in ok]),
                cpu_s=_median([statistics.median(r["cpus"]) if r["cpus"] else None for r in ok]),
                peak_gb=_median([r["peak_bytes"] / GB if r["peak_bytes"] is not None else None for r in ok]),
                weights_rss_gb=_median([r["weights_rss_bytes"] / GB for r in ok]),
                xla_temp_gb=_median([(r["xla_temp_bytes"] or 0) / GB if r["xla_temp_bytes"] else None for r in ok]),
                load=_median([statistics.median(r["load_avg"]) if r.get("load_avg") else None for r in ok]),
                device=ok[0]["device"],
            )
        out.append(row)
    return out


def _fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    lines = [
        "| frames | size | impl | compile (s) | time (s) | CPU (s) | peak beyond weights (GB) | XLA temp (GB) | load |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        size = f"{r['height']}x{r['width']}"
        if "error" in r:
            lines.append(f"| {r['frames']} | {size} | {r['impl']} | error: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['frames']} | {size} | {r['impl']} | {_fmt(r['compile_s'], '.1f')} | {_fmt(r['time_s'])} | "
            f"{_fmt(r['cpu_s'])} | {_fmt(r['peak_gb'])} | {_fmt(r['xla_temp_gb'])} | {_fmt(r['load'], '.1f')} |"
        )
    return "\n".join(lines)


def ratios(records: list[dict]) -> list[dict]:
    """Ours / official per (frames, size): the median over rounds of each round's ratio, so a round's pair, measured
    minutes apart, shares the machine's load; peak memory does not depend on load and is compared directly."""
    pairs: dict[tuple, dict[int, dict]] = {}
    for r in records:
        if "error" not in r and r.get("walls") is not None:
            pairs.setdefault((r["frames"], r["height"], r["width"]), {}).setdefault(r["round"], {})[r["impl"]] = r
    out = []
    for (frames, h, w), rounds in pairs.items():
        both = [(rd["jax"], rd["torch"]) for rd in rounds.values() if "jax" in rd and "torch" in rd]
        if not both:
            continue

        def ratio(key, both=both):
            values = [statistics.median(a[key]) / statistics.median(b[key]) for a, b in both if a[key] and b[key]]
            return statistics.median(values) if values else None

        peaks = [a["peak_bytes"] / b["peak_bytes"] for a, b in both if a["peak_bytes"] and b["peak_bytes"]]
        out.append(
            dict(
                frames=frames,
                height=h,
                width=w,
                rounds=len(both),
                time=ratio("walls"),
                cpu=ratio("cpus"),
                peak=statistics.median(peaks) if peaks else None,
            )
        )
    return out


def ratio_table(rs: list[dict]) -> str:
    lines = [
        "| frames | size | time ours / official | CPU s ours / official | peak beyond weights ours / official |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rs:
        lines.append(
            f"| {r['frames']} | {r['height']}x{r['width']} | {_fmt(r['time'])} | {_fmt(r['cpu'])} | {_fmt(r['peak'])} |"
        )
    return "\n".join(lines)


def dtype_error(fixture: str, config: str, dtypes: Sequence[str] = ("float32", "bfloat16")) -> list[dict]:
    """Each compute dtype's outputs on a golden fixture (the fixture's recipe weights, float32 inputs) against the
    float32 path and against the official float64 golden arrays: nrmse and max relative error per output."""
    from pathlib import Path

    import jax
    import numpy as np

    from vggt_jax.model.vggt import VGGT
    from vggt_jax.parity.compare import DENSE, TRACK, metrics
    from vggt_jax.parity.run import fixture_model_config, fixture_params, load_fixture

    arrays, meta = load_fixture(fixture)
    cfg = fixture_model_config(config, x64=False)
    params = fixture_params(Path(fixture).parent / meta["weights_table"], cfg, log=lambda m: print(m, file=sys.stderr))
    images = arrays["images"].astype(np.float32)
    queries = arrays.get("query_points")
    queries = None if queries is None else queries.astype(np.float32)
    outs = {}
    for dtype in dtypes:
        t = time.perf_counter()
        out = jax.jit(VGGT(cfg.replace(dtype=dtype)).apply)(params, images, queries)
        outs[dtype] = {k: np.asarray(v, np.float64) for k, v in out.items()}
        print(f"{dtype} forward (with compile) {time.perf_counter() - t:.1f} s", file=sys.stderr)
    rows = []
    for dtype in dtypes:
        for name in (*DENSE, *TRACK):
            if name not in outs[dtype]:
                continue
            golden = arrays.get(f"{name}__f64")
            rows.append(
                dict(
                    dtype=dtype,
                    output=name,
                    vs_float32=metrics(outs[dtype][name], outs["float32"][name]) if dtype != "float32" else None,
                    vs_golden_f64=None if golden is None else metrics(outs[dtype][name], golden),
                )
            )
    return rows


def error_table(rows: list[dict]) -> str:
    lines = [
        "| dtype | output | nrmse vs float32 | max rel vs float32 | nrmse vs official f64 | max rel vs official f64 |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        a, g = r["vs_float32"] or {}, r["vs_golden_f64"] or {}
        lines.append(
            f"| {r['dtype']} | {r['output']} | {_fmt(a.get('nrmse'), '.2e')} | {_fmt(a.get('maxrel'), '.2e')} | "
            f"{_fmt(g.get('nrmse'), '.2e')} | {_fmt(g.get('maxrel'), '.2e')} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="vggt_1b", help="model variant (vggt_jax.config.VARIANTS)")
    ap.add_argument("--frames", default="2,4,8", help="comma-separated frame counts")
    ap.add_argument("--sizes", default="392x518", help="comma-separated HxW, multiples of the patch size")
    ap.add_argument("--queries", type=int, default=0, help="track query points (0: no track head)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="compute dtype")
    ap.add_argument(
        "--repeats", type=int, default=3, help="steady-state forwards per measurement (median); 0: memory only"
    )
    ap.add_argument("--rounds", type=int, default=1, help="times each (ours, official) pair is measured")
    ap.add_argument("--impls", default="jax", help="comma-separated: jax, torch (torch is added by --torch-ref)")
    ap.add_argument(
        "--torch-ref",
        default=None,
        help="checkout of the official code to run side by side: facebookresearch/vggt for vggt_1b, "
        "facebookresearch/vggt-omega for the vggt_omega_1b variants",
    )
    ap.add_argument(
        "--overrides", default="{}", help='JSON of VGGTConfig fields for ours, e.g. \'{"attention": "xla"}\''
    )
    ap.add_argument(
        "--compile-only", action="store_true", help="ours only: compile time and XLA's temp memory, no forwards"
    )
    ap.add_argument(
        "--compilation-cache", default=None, metavar="DIR", help="persistent compilation cache for ours (default: off)"
    )
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    ap.add_argument("--json", default=None, help="write the records, table rows and ratios here")
    ap.add_argument(
        "--dtype-error",
        default=None,
        metavar="FIXTURE",
        help="instead of timing: float32 and bfloat16 outputs on a golden fixture (.npz) vs float32 and vs the "
        "official float64 arrays",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    frames = [int(f) for f in args.frames.split(",")]
    if args.dtype_error:
        rows = dtype_error(args.dtype_error, args.config)
        print(f"config {args.config}, fixture {os.path.basename(args.dtype_error)}")
        print(error_table(rows))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(dict(argv=sys.argv, dtype_error=rows), f, indent=1)
        return
    if args.child:
        args.frames_n, (args.height, args.width) = frames[0], sizes[0]
        result = child_jax(args) if args.child == "jax" else child_torch(args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    impls = [i for i in args.impls.split(",") if i]
    if args.torch_ref and "torch" not in impls and not args.compile_only:
        impls.append("torch")
    if "torch" in impls and not args.torch_ref:
        raise SystemExit("--impls torch needs --torch-ref PATH (a checkout of facebookresearch/vggt)")
    records = []
    for size in sizes:
        for n in frames:
            for round_ in range(args.rounds):
                # Alternate which goes first, so neither always runs right after the other's load.
                for impl in impls if round_ % 2 == 0 else impls[::-1]:
                    record = run_child(impl, n, size, args)
                    record["round"] = round_
                    records.append(record)
                    if "error" in record:
                        brief = record["error"]
                    elif args.compile_only:
                        brief = f"compile {record['compile_s']:.1f} s, XLA temp {record['xla_temp_bytes'] / GB:.2f} GB"
                    else:
                        walls = record["walls"]
                        brief = f"time {statistics.median(walls):.2f} s, " if walls else ""
                        brief += f"peak {record['peak_bytes'] / GB:.2f} GB"
                    print(f"[{impl} {n} x {size[0]}x{size[1]}] {brief}", file=sys.stderr, flush=True)
    rows = summarize(records)
    print(machine_line())
    print(f"config {args.config}, {args.dtype}, queries {args.queries}, overrides {args.overrides}")
    print(table(rows))
    rs = ratios(records)
    if rs:
        print()
        print(ratio_table(rs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(argv=sys.argv, machine=cpu_info(), records=records, rows=rows, ratios=rs), f, indent=1)


if __name__ == "__main__":
    main()
