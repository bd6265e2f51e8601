"""Metrics to stdout (process 0), to TensorBoard event files and to ``metrics.jsonl`` (one JSON object per logged step).

Only process 0 writes files. TensorBoard files come from ``tensorboardX`` (a small pure-Python package, not
TensorFlow).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path


class MetricWriter:
    def __init__(self, workdir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(workdir) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
        scalars = {f"{prefix}{k}": float(v) for k, v in scalars.items()}
        if not self.enabled:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items()))
        print(f"step {step} {text}", flush=True)
        with self.path.open("a") as f:
            f.write(
                json.dumps({"step": step, **{k: (v if math.isfinite(v) else None) for k, v in scalars.items()}}) + "\n"
            )
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str | Path) -> list[dict]:
    """The rows of ``metrics.jsonl``."""
    path = Path(workdir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
