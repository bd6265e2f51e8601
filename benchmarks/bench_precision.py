"""The precision policy measured: each family's bfloat16 (and float32) forward against the float64 goldens.

    python benchmarks/bench_precision.py              # VGGT tiny and VGGT-Omega tiny (seconds each)
    python benchmarks/bench_precision.py --1b         # + VGGT-1B and Omega-1B (minutes each, ~12 GB)

The weights are the fixtures' recipe weights (../shared/fixtures), converted to float32; the model runs with
``dtype`` bfloat16 and the policy's float32 places (``vggt_jax.model.precision``). nRMSE is the fixtures' metric
(RMS error over the RMS of the float64 golden). Prints one markdown row per (model, dtype).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
CASES = {
    "tiny": ("tiny", "tiny_weights.json", "tiny_s3_112x154_q8.npz"),
    "omega_tiny": ("omega_tiny", "omega/omega_tiny_weights.json", "omega/omega_tiny_s3_96x144.npz"),
    "vggt_1b": ("vggt_1b", "vggt1b_weights.json", "vggt1b_s2_392x518_q16.npz"),
    "omega_1b": ("vggt_omega_1b", "omega/omega1b_weights.json", "omega/omega1b_s2_416x624.npz"),
}
OUTPUTS = ("pose_enc", "depth", "depth_conf", "world_points")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--1b", dest="big", action="store_true")
    ap.add_argument("--models", default=None, help=f"comma-separated, from {','.join(CASES)} (overrides --1b)")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    from machine import machine_line

    from vggt_jax.parity.compare import metrics
    from vggt_jax.parity.run import fixture_model_config, fixture_params, load_fixture, run_model

    names = ["tiny", "omega_tiny"] + (["vggt_1b", "omega_1b"] if args.big else [])
    names = args.models.split(",") if args.models else names
    rows = []
    for name in names:
        config_name, table, case = CASES[name]
        arrays, _ = load_fixture(FIXTURES / case)
        base = fixture_model_config(config_name, x64=False).replace(heads_frames_chunk=1)
        params = fixture_params(FIXTURES / table, base, log=lambda *_: None)
        for dtype in args.dtypes.split(","):
            config = base.replace(dtype=dtype, head_dtype="float32")
            t = time.perf_counter()
            out, _ = run_model(config, params, arrays["images"], None)
            seconds = time.perf_counter() - t
            errs = {}
            for key in OUTPUTS:
                golden = arrays.get(f"{key}__f64")
                if golden is not None and key in out:
                    errs[key] = metrics(np.asarray(out[key], np.float64).reshape(golden.shape), golden)["nrmse"]
            rows.append((name, dtype, errs, seconds))
            print(f"[{name} {dtype}] {errs} {seconds:.1f} s", file=sys.stderr, flush=True)
    print(machine_line())
    print("| model | dtype | " + " | ".join(f"{k} nRMSE" for k in OUTPUTS) + " | s (with compile) |")
    print("|---" * (3 + len(OUTPUTS)) + "|")
    for name, dtype, errs, seconds in rows:
        cells = " | ".join(f"{errs[k]:.1e}" if k in errs else "-" for k in OUTPUTS)
        print(f"| {name} | {dtype} | {cells} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
