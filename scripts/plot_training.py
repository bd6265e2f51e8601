"""Plot a run's training loss and held-out metrics from WORKDIR/metrics.jsonl (needs matplotlib).

python scripts/plot_training.py /tmp/run docs/train_synthetic.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--title", default="")
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (args.workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]

    def series(key):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.plot(*series("train/loss/objective"), label="train objective")
    ax.plot(*series("eval/loss/objective"), "o-", label="held-out objective")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("loss")
    ax.legend()
    ax = axes[1]
    for key, label in (
        ("eval/camera_auc30", "AUC@30"),
        ("eval/camera_rra30", "RRA@30"),
        ("eval/camera_rta30", "RTA@30"),
        ("eval/camera_spread", "pose spread (pred / gt; above 1 off the chart)"),
    ):
        ax.plot(*series(key), "o-", label=label)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("step")
    ax.set_title("cameras (held-out scenes)")
    ax.legend(fontsize="small", loc="lower right")
    ax = axes[2]
    ax.plot(*series("eval/depth_abs_rel"), "o-", label="depth AbsRel")
    ax.plot(*series("eval/depth_delta1.25"), "o-", label="depth delta<1.25")
    ax.plot(*series("eval/point_err"), "o-", label="point error (normalised)")
    ax.set_yscale("log")  # the random heads' point error is ~100 times the trained one
    ax.set_xlabel("step")
    ax.set_title("depth and points (held-out scenes)")
    ax.legend()
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
