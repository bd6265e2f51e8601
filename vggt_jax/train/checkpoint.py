"""Training checkpoints: orbax CheckpointManager with the train state and the data iterator's position.

``WORKDIR/checkpoints/<step>/state`` holds params, optimiser state, step, RNG and the skipped-step count (one
orbax PyTree, written by every process for its own shards); ``<step>/data_iter/process_<i>-of-<n>.json`` holds each
process's grain iterator state. Saves are asynchronous (training continues while the arrays are written) and
atomic (a step directory appears only once complete), so a process killed at any moment resumes from the last
complete step. Restoring takes the target shardings, so a checkpoint written on one mesh restores onto another.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding

log = logging.getLogger(__name__)


def concrete_target(abstract: Any, mesh: jax.sharding.Mesh | None = None) -> Any:
    """ShapeDtypeStructs whose shardings sit on a concrete mesh: orbax cannot restore onto an ``AbstractMesh``
    (``_device_assignment is not implemented``), which ``jax.eval_shape`` under ``jax.set_mesh`` produces."""

    def fix(x):
        s = x.sharding
        if isinstance(s, NamedSharding) and not isinstance(s.mesh, jax.sharding.Mesh):
            if mesh is None:
                raise ValueError("a restore target sits on an AbstractMesh; pass the concrete mesh")
            s = NamedSharding(mesh, s.spec)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)

    return jax.tree.map(fix, abstract)


class Checkpointer:
    """Save every ``every_steps`` steps (and on demand), keep the last ``max_to_keep``, resume from the latest."""

    def __init__(self, directory: str | Path, every_steps: int, max_to_keep: int = 3, async_save: bool = True):
        self.directory = Path(directory).absolute()
        self.every_steps = max(int(every_steps), 1)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=async_save,
        )
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_names=("state", "data_iter"),
            item_handlers={"state": ocp.StandardCheckpointHandler(), "data_iter": grain.checkpoint.CheckpointHandler()},
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, data_iter: Any | None = None, force: bool = False) -> bool:
        """Save if ``step`` is on the interval (or ``force``); returns whether a save started. The iterator state is
        read now (synchronously), the arrays are written in the background."""
        if step % self.every_steps and not force:
            return False
        args = {"state": ocp.args.StandardSave(state)}
        if data_iter is not None:
            args["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        # The interval is decided here (orbax's own policy also saves the first step it sees).
        saved = self.manager.save(step, args=ocp.args.Composite(**args), force=True)
        if saved:
            log.info("checkpoint: saving step %d to %s", step, self.directory)
        return saved

    def restore(self, step: int | None, abstract_state: Any, data_iter: Any | None = None, mesh=None) -> Any:
        """The state of ``step`` (default latest) restored into the shardings of ``abstract_state``; ``data_iter``
        (if given) is moved to the saved position."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        args = {"state": ocp.args.StandardRestore(concrete_target(abstract_state, mesh))}
        if data_iter is not None:
            args["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
        restored = self.manager.restore(step, args=ocp.args.Composite(**args))
        log.info("checkpoint: restored step %d from %s", step, self.directory)
        return restored["state"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def reached_preemption(self, step: int) -> bool:
        """True on every process once any of them was told to stop (multi-host preemption notice)."""
        return self.manager.reached_preemption(step)

    def close(self) -> None:
        self.manager.close()
