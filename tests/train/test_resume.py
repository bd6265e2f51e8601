"""Preemption and resumption through ``train.py``, bit for bit.

One run goes straight to the end. Another is stopped with SIGTERM (it must save a checkpoint at the current step and
exit cleanly), resumed, killed with SIGKILL (no chance to save: it restarts from the last complete checkpoint, and
the data iterator from the position saved with it), and resumed again to the end. Both end with the same state,
every bit of it.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from conftest import CACHE_DIR, REPO

STEPS = 48
ARG = f"model=micro,size=28,frames=3,batch=2,freeze=True,steps={STEPS}"
FLAGS = [
    f"--config={REPO / 'configs' / 'train_synthetic.py'}:{ARG}",
    "--config.eval_every=0",
    "--config.log_every=1",
    "--config.ckpt_every=8",
    "--config.async_checkpoint=False",
    "--config.data.source.num_scenes=16",
    "--config.data.source.height=36",
    "--config.data.source.width=48",
]


def env() -> dict:
    e = dict(os.environ)
    e.update(
        PYTHONPATH=str(REPO),
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
        JAX_PLATFORMS="cpu",
    )
    return e


def start(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), f"--workdir={workdir}", *FLAGS],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def steps_logged(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return max((r["step"] for r in rows), default=0)


def checkpoints(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the signal: {proc.stdout.read()[-3000:]}")
        assert time.time() - t0 < timeout, "timed out waiting for the run"
        time.sleep(0.02)


def final_state(workdir: Path) -> dict:
    step = checkpoints(workdir)[-1]
    with ocp.StandardCheckpointer() as ckptr:
        return jax.device_get(ckptr.restore(workdir / "checkpoints" / str(step) / "state"))


def check_tensorboard(workdir: Path) -> None:
    """The event file holds the logged scalars (read with tensorboardX's protobufs, TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    files = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    data, tags, i = files[0].read_bytes(), set(), 0
    while i < len(data):
        n = struct.unpack("<Q", data[i : i + 8])[0]
        event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
        tags.update(v.tag for v in event.summary.value)
        i += 12 + n + 4
    assert {"train/loss/objective", "train/grad_norm", "train/lr", "train/images_per_sec"} <= tags


def test_sigterm_and_sigkill_resume_bit_for_bit(tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    finish(start(straight))
    assert checkpoints(straight)[-1] == STEPS
    check_tensorboard(straight)

    # SIGTERM a few steps in: a checkpoint at that step (off the 8-step interval), a clean exit.
    proc = start(broken)
    wait_for(lambda: steps_logged(broken) >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    stopped = checkpoints(broken)[-1]
    assert 3 <= stopped < STEPS

    # Resume, then SIGKILL once a later periodic checkpoint exists: nothing is saved at the kill.
    proc = start(broken)
    wait_for(
        lambda: any(s > stopped for s in checkpoints(broken)) and steps_logged(broken) > checkpoints(broken)[-1], proc
    )
    proc.kill()
    proc.wait()
    killed_at = checkpoints(broken)[-1]
    assert stopped < killed_at < STEPS, (stopped, killed_at)

    finish(start(broken))
    assert checkpoints(broken)[-1] == STEPS
    a, b = final_state(straight), final_state(broken)
    leaves_a, leaves_b = jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 100
    for (path, x), y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
    assert int(a["step"]) == STEPS and int(a["skipped"]) == 0
    # A finished run leaves its weights as an inference checkpoint (WORKDIR/model) that the Predictor reads.
    from vggt_jax.convert.checkpoint import load_checkpoint

    config, params = load_checkpoint(straight / "model")
    assert config.name == "micro" and config.track_head is None
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(params["params"]), jax.tree.leaves(a["params"]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
