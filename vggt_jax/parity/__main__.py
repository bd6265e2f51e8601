"""``python -m vggt_jax.parity FIXTURE.npz --config tiny|vggt_1b [--x64]``

Prints one JSON line per output (max abs error, NRMSE, tolerance, pass/fail); exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import sys

from vggt_jax.config import VARIANTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vggt_jax.parity", description=__doc__.splitlines()[0])
    parser.add_argument("fixture", help="a forward-case fixture .npz (its weights table must lie beside it)")
    parser.add_argument(
        "--config", required=True, choices=sorted(VARIANTS), help="model variant of the fixture (VGGT or VGGT-Omega)"
    )
    parser.add_argument("--x64", action="store_true", help="float64 params and compute (jax_enable_x64)")
    parser.add_argument("--workdir", default=None, help="where the temporary .safetensors is written")
    args = parser.parse_args(argv)

    from vggt_jax.parity.run import run_parity

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        records = run_parity(args.fixture, args.config, args.x64, args.workdir, log)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in records:
        print(json.dumps(r), flush=True)
    failed = [r["output"] for r in records if r["pass"] is False]
    compared = sum(r["pass"] is not None for r in records)
    log(f"{compared - len(failed)}/{compared} outputs within tolerance" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
