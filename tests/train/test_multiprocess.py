"""Two local processes through ``jax.distributed`` (127.0.0.1, one CPU device each, gloo collectives) train in
lockstep with one process driving both devices on the same data.

The mesh is ``fsdp=2`` across the processes, so parameters and optimiser state are split between them and every
step all-gathers and reduce-scatters across the process boundary; each process builds only its own half of every
batch from its own scene shard, and writes its own shards and data-iterator state into the checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import CACHE_DIR, REPO, load_file_module

from vggt_jax import data
from vggt_jax.train import sharding as sh
from vggt_jax.train.checkpoint import Checkpointer
from vggt_jax.train.loop import data_config
from vggt_jax.train.trainer import Trainer

STEPS = 4
ARG = f"model=micro,size=28,frames=3,batch=2,freeze=True,steps={STEPS}"
# The bounds below were measured at lr 5e-4 (the config's lr until 2026-12-02). At its lr 2e-3, Adam turns the
# reduction-order differences into 4x larger steps and step 4's loss differs by 1.6e-5 relative; the lr is pinned so
# the test checks the lockstep, not the config's hyperparameters.
OVERRIDES = {
    "optim.lr": 5e-4,
    "eval_every": 0,
    "log_every": 1,
    "ckpt_every": STEPS,
    "mesh.data": 1,
    "mesh.fsdp": 2,
    "sharding_tolerance": 0.1,
    "data.source.num_scenes": 16,
    "data.source.height": 36,
    "data.source.width": 48,
}


def config():
    c = load_file_module("configs/train_synthetic.py").get_config(ARG)
    for key, value in OVERRIDES.items():
        *path, last = key.split(".")
        target = c
        for p in path:
            target = target[p]
        target[last] = value
    return c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
def test_two_processes_match_one(tmp_path):
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
        JAX_PLATFORMS="cpu",
    )
    flags = [f"--config={REPO / 'configs' / 'train_synthetic.py'}:{ARG}"]
    flags += [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "train.py"),
                f"--workdir={tmp_path / 'run'}",
                *flags,
                f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                "--config.distributed.num_processes=2",
                f"--config.distributed.process_id={i}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / str(STEPS)
    per_process = sorted(p.name for p in (ckpt / "data_iter").iterdir() if p.name.startswith("process_"))
    assert per_process == ["process_0-of-2.json", "process_1-of-2.json"]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss/objective"] for r in logged if "train/loss/objective" in r]

    # One process, two devices, the same mesh; each step's batch is the two processes' halves side by side.
    cfg = config()
    mesh = sh.make_mesh(1, 2, 1, devices=jax.devices()[:2])
    trainer = Trainer.create(cfg, mesh)
    with jax.set_mesh(mesh), sh.logical_axis_rules():
        state = trainer.init_state(cfg.seed)
        init_params = jax.device_get(state["params"])
        step = trainer.jit_train_step()
        dcfg = data_config(cfg, mesh)
        dcfg.batch_multiple = 1  # what each of the two processes used (one data-parallel device each)
        iters = [data.make_train_iterator(dcfg, seed=cfg.seed, process_index=i, process_count=2) for i in range(2)]
        ref_losses = []
        for _ in range(STEPS):
            halves = [next(it) for it in iters]
            local = {k: np.concatenate([h[k] for h in halves]) for k in halves[0]}
            state, m = step(state, trainer.global_batch(local))
            ref_losses.append(float(m["loss/objective"]))
        ref = jax.device_get(state)
        got = jax.device_get(Checkpointer(ckpt.parent, 1).restore(STEPS, trainer.abstract_state, mesh=mesh))
    # Every step's loss agrees (measured: identical). The state agrees up to the order of the cross-device sums (gloo
    # between processes, an in-process all-reduce here): measured worst parameter difference 5.3e-7 (mean 6e-10)
    # against a largest parameter change of 5.2e-4 after four steps; bounds as in test_step.py.
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    init = jax.device_get(init_params)
    p_ref, p_got = ref["params"], got["params"]
    pairs = list(zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_got), strict=True))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(p_ref), strict=True))
    worst = max(float(np.abs(a - b).max()) for a, b in pairs)
    mean = sum(float(np.abs(a - b).sum()) for a, b in pairs) / sum(a.size for a, _ in pairs)
    assert moved > 1e-4 and worst < 0.02 * moved and mean < 1e-7, (moved, worst, mean)
    assert int(got["step"]) == STEPS and int(got["skipped"]) == 0
