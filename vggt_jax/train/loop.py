"""The training loop: it only orchestrates (data -> jitted step -> metrics, evaluation, checkpoints).

``run(config, workdir)`` resumes from the latest checkpoint in ``workdir`` if there is one, else initialises (at
random, or from ``config.init_from``, a converted checkpoint). SIGTERM (preemption) makes it save at the end of the
current step and return. It returns a summary a test can check.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from vggt_jax.train import metrics as metrics_lib
from vggt_jax.train import sharding as sh
from vggt_jax.train.checkpoint import Checkpointer
from vggt_jax.train.trainer import Trainer
from vggt_jax.train.writer import MetricWriter

log = logging.getLogger(__name__)

MODEL_DIR = "model"  # WORKDIR/model: the trained weights as an inference checkpoint


def initialize_distributed(cfg: Any) -> None:
    """``jax.distributed.initialize`` from ``config.distributed`` or the environment (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID); ``auto=True`` lets JAX detect a TPU pod / SLURM / Open MPI cluster."""
    address = cfg.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
    num = cfg.num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0"))
    pid = cfg.process_id if cfg.process_id >= 0 else int(os.environ.get("JAX_PROCESS_ID", "-1"))
    if address:
        if num <= 0 or pid < 0:
            raise ValueError("distributed: a coordinator address needs num_processes and process_id (flags or env)")
        jax.distributed.initialize(address, num_processes=num, process_id=pid)
    elif cfg.auto:
        jax.distributed.initialize()
    if jax.process_count() > 1:
        log.info(
            "process %d of %d, %d local devices", jax.process_index(), jax.process_count(), jax.local_device_count()
        )


class _Preemption:
    """SIGTERM sets a flag the loop reads after each step (the handler itself does nothing else).

    Single process only: with several processes every one must stop at the same step, which JAX's own preemption
    notifier (installed by ``jax.distributed.initialize``) and orbax's ``reached_preemption`` sync point provide;
    a Python handler would replace that notifier."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        log.warning("SIGTERM: saving a checkpoint after this step, then stopping")
        self.requested = True

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def data_config(config: Any, mesh: jax.sharding.Mesh, eval_mode: bool = False) -> ml_collections.ConfigDict:
    """``config.data`` with the batch a multiple of this process's data-parallel devices (and, for evaluation,
    the held-out settings of ``config.eval``)."""
    from vggt_jax.config import get_config

    c = ml_collections.ConfigDict(config.data.to_dict())
    # The model's patch size (14 for VGGT, 16 for VGGT-Omega): image sides must be multiples of it.
    c.patch_size = get_config(config.model.variant).patch_size
    local = max(sh.data_parallel_size(mesh) // jax.process_count(), 1)
    c.batch_multiple = math.lcm(int(c.batch_multiple), local * int(config.optim.accum_steps))
    if config.images_per_device:
        c.max_images_per_batch = config.images_per_device * local
    if eval_mode:
        c.training = False
        c.update(config.eval.data.to_dict())
        c.source.update(config.eval.source.to_dict())
        for entry in c.mix.values():  # the held-out settings apply to every mixed source
            entry.update(config.eval.source.to_dict())
            entry.num_frames, entry.aspect_ratios = tuple(c.num_frames), tuple(c.aspect_ratios)
    return c


def make_iterator(config: Any, mesh, eval_mode: bool = False):
    from vggt_jax import data

    seed = config.eval.seed if eval_mode else config.seed
    return data.make_train_iterator(data_config(config, mesh, eval_mode), seed=seed)


def evaluate(trainer: Trainer, eval_step, params, config: Any) -> dict[str, float]:
    """Metrics over ``config.eval.num_batches`` held-out batches (the same batches every time)."""
    it = make_iterator(config, trainer.mesh, eval_mode=True)
    outs = []
    for _ in range(config.eval.num_batches):
        out = eval_step(params, trainer.global_batch(next(it)))
        outs.append(jax.tree.map(np.asarray, jax.device_get(out)))
    return metrics_lib.summarise(outs)


def save_model(trainer: Trainer, params: Any, workdir: str | Path, image_resolution: int | None = None) -> str | None:
    """``WORKDIR/model``: the trained weights as an inference checkpoint (``config.json`` + ``params/``, what
    ``python -m vggt_jax.convert`` writes), for ``infer.py --checkpoint`` and ``Predictor.from_checkpoint``.
    Written by single-process runs (None otherwise: convert a training checkpoint with ``export_model``). The
    config records ``image_resolution`` (the training ``data.img_size``), the size inference preprocesses to."""
    from vggt_jax.convert.checkpoint import save_checkpoint

    if jax.process_count() > 1:
        log.info("model: not written by a multi-process run; use vggt_jax.train.loop.export_model on one host")
        return None
    config = trainer.model.config.replace(remat="none", image_resolution=image_resolution)
    path = save_checkpoint(Path(workdir) / MODEL_DIR, config, {"params": params}, overwrite=True)
    log.info("model: wrote %s", path)
    return str(path)


def export_model(config: Any, workdir: str | Path, step: int | None = None) -> str | None:
    """``save_model`` for the training checkpoint of ``step`` (default the latest) in ``workdir``."""
    mesh = sh.make_mesh(**config.mesh)
    trainer = Trainer.create(config, mesh)
    ckpt = Checkpointer(Path(workdir) / "checkpoints", config.ckpt_every, config.ckpt_keep, async_save=False)
    try:
        with jax.set_mesh(mesh), sh.logical_axis_rules():
            state = ckpt.restore(step, trainer.abstract_state, None, mesh)
            return save_model(trainer, state["params"], workdir, int(config.data.img_size))
    finally:
        ckpt.close()


def run(config: Any, workdir: str | Path) -> dict[str, Any]:
    """Train per ``config`` in ``workdir``; returns ``{"step", "skipped", "preempted", "train", "eval", "model"}``
    (``model``: the inference checkpoint a finished single-process run writes, ``save_model``)."""
    workdir = Path(workdir)
    mesh = sh.make_mesh(**config.mesh)
    trainer = Trainer.create(config, mesh)
    primary = jax.process_index() == 0
    writer = MetricWriter(workdir, enabled=primary)
    ckpt = Checkpointer(workdir / "checkpoints", config.ckpt_every, config.ckpt_keep, config.async_checkpoint)
    preemption = _Preemption()
    train_it = make_iterator(config, mesh)
    summary: dict[str, Any] = {"preempted": False, "eval": {}, "train": {}}
    try:
        with jax.set_mesh(mesh), sh.logical_axis_rules():
            latest = ckpt.latest_step()
            if latest is not None:
                state = ckpt.restore(latest, trainer.abstract_state, train_it, mesh)
            elif config.init_from:
                state = trainer.load_pretrained(config.init_from, config.seed)
            else:
                state = trainer.init_state(config.seed)
            excess = sh.assert_params_sufficiently_sharded(state["params"], mesh, config.sharding_tolerance)
            log.info("params: %.1f%% of their bytes per device above an even split", 100 * excess)
            step = first_step = int(jax.device_get(state["step"]))
            train_step, eval_step = trainer.jit_train_step(), trainer.jit_eval_step()
            if config.eval_every and step == 0:
                summary["eval"] = evaluate(trainer, eval_step, state["params"], config)
                writer.write(step, summary["eval"], "eval/")
            window: list[dict] = []
            images, tic = 0, time.perf_counter()
            while step < config.total_steps:
                local = next(train_it)
                batch = trainer.global_batch(local)
                state, m = train_step(state, batch)
                step += 1
                window.append(m)
                if len(window) == 1 and step == first_step + 1:
                    # Throughput excludes the first step, which compiles.
                    jax.block_until_ready(m)
                    images, tic = 0, time.perf_counter()
                else:
                    images += int(np.sum(local["frame_mask"])) * jax.process_count()
                if step % config.log_every == 0 or step == config.total_steps:
                    rows = jax.device_get(window)
                    finite = [r for r in rows if bool(r["finite"])]
                    scalars = (
                        {k: float(np.mean([r[k] for r in finite])) for k in finite[0] if k != "finite"}
                        if finite
                        else {}
                    )
                    elapsed = time.perf_counter() - tic
                    scalars.update(
                        images_per_sec=images / elapsed if images else float("nan"),
                        skipped_steps=int(jax.device_get(state["skipped"])),
                    )
                    writer.write(step, scalars, "train/")
                    summary["train"] = scalars
                    window, images, tic = [], 0, time.perf_counter()
                if config.eval_every and (step % config.eval_every == 0 or step == config.total_steps):
                    summary["eval"] = evaluate(trainer, eval_step, state["params"], config)
                    writer.write(step, summary["eval"], "eval/")
                    tic = time.perf_counter()
                stop = preemption.requested or (jax.process_count() > 1 and ckpt.reached_preemption(step))
                ckpt.save(step, state, train_it, force=stop or step == config.total_steps)
                if stop:
                    summary["preempted"] = True
                    break
            ckpt.wait()
            if step == config.total_steps and not summary["preempted"]:
                summary["model"] = save_model(trainer, state["params"], workdir, int(config.data.img_size))
            summary["step"] = step
            summary["skipped"] = int(jax.device_get(state["skipped"]))
    finally:
        preemption.restore()
        ckpt.close()
        writer.close()
    return summary
