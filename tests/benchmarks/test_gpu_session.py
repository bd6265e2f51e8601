"""benchmarks/gpu_session.py, the script a lent GPU runs, as its CPU dry run (the micro model at two sizes), so it
cannot rot between the sessions that have a device."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_session  # noqa: E402

# Stands in for a checkout of facebookresearch/vggt: the same package path and constructor, a model small enough
# for a test. It exercises the official-model series (autocast, memory, the ratio table), not the official code.
STANDIN = """
import torch


class VGGT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 14, stride=14)

    def forward(self, images):
        b, s = images.shape[:2]
        return {"depth": self.conv(images.flatten(0, 1)).unflatten(0, (b, s))}
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    checkout = tmp_path_factory.mktemp("official")
    (checkout / "vggt" / "models").mkdir(parents=True)
    (checkout / "vggt" / "__init__.py").write_text("")
    (checkout / "vggt" / "models" / "__init__.py").write_text("")
    (checkout / "vggt" / "models" / "vggt.py").write_text(STANDIN)
    out = tmp_path_factory.mktemp("out")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_session.py"), "--dry-run", "--out", str(out)]
    proc = subprocess.run(cmd + ["--torch-ref", str(checkout)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout


def test_dry_run_measures_every_series(session):
    out, stdout = session
    result = json.loads((out / "gpu_session.json").read_text())
    records = [r for r in result["records"] if r["impl"] != "checks"]
    rows = {(r["impl"], r["dtype"], r["attention"], r["frames"]): r for r in records}
    checks = [r for r in result["records"] if r["impl"] == "checks"]
    # The lowering matrix's cuda cases (lowered and checked; no device to compile them here) and the exported model.
    assert len([r for r in checks if "lowering_check" in r]) == 8 and all(
        r["lowering_check"] == "ok" for r in checks if "lowering_check" in r
    ), checks
    exported = [r for r in checks if "depth_max_abs_diff" in r]
    assert [r["frames"] for r in exported] == [2, 5] and all(r["depth_max_abs_diff"] < 1e-4 for r in exported)
    expected = {("jax", "bfloat16", "auto", 1), ("jax", "bfloat16", "auto", 2), ("jax", "float32", "chunked", 2)}
    expected |= {("torch", "bfloat16", "sdpa", 1), ("torch", "bfloat16", "sdpa", 2)}
    assert set(rows) == expected
    for key, r in rows.items():
        assert r["time_s"] > 0 and r["first_s"] > 0 and r["runs"] == 3, (key, r)
        if key[0] == "jax":
            assert r["compile_s"] > 0 and r["xla_temp_gb"] >= 0 and r["device"], (key, r)
    env = result["environment"]
    assert env["jax"] and env["machine"].startswith("machine: ")
    # The markdown table names the machine and the versions, has one row per record and the ratio table.
    table = (out / "gpu_session.md").read_text()
    assert table.strip() == stdout.strip()
    assert "machine: " in table and f"jax {env['jax']}" in table
    assert sum(line.startswith("| ours ") or line.startswith("| official ") for line in table.splitlines()) == 5
    assert "| bfloat16 | 2 |" in table.split("time ours / official")[1]
    assert not list(out.glob("*.tmp"))


def test_clock_skips_what_would_not_fit():
    clock = gpu_session.Clock(deadline=time.time() + 30)
    assert clock.skip(10) is None  # nothing measured yet: nothing to extrapolate from
    clock.last = (10, 1.0, 5.0)  # 10 frames took 1 s a forward after a 5 s compile
    assert clock.skip(20) is None  # 5 s + 4 forwards of 4 s = 21 s
    assert "estimated 41 s" in clock.skip(30)  # 5 + 4 x 9 s, past the 30 s left
    assert "estimated 105 s" in clock.skip(100)  # a 100 s forward runs once: 5 + 100 s
    assert gpu_session.Clock(deadline=time.time() - 1).skip(1) == "no time left"


def test_out_of_memory_is_recognised():
    assert gpu_session._is_oom(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.2GiB"))
    assert gpu_session._is_oom(type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate"))
    assert not gpu_session._is_oom(ValueError("shapes (2, 3) and (4,) do not match"))


def test_needs_an_output_folder(monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    with pytest.raises(SystemExit, match="--out FOLDER"):
        gpu_session.main(["--dry-run"])
