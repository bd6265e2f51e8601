"""Train VGGT: ``python train.py --config configs/train_synthetic.py --workdir /tmp/run``.

Flags: ``--config FILE[:ARG]`` (an ml_collections config file, fields overridable as ``--config.optim.lr=1e-4``)
and ``--workdir DIR`` (checkpoints, metrics.jsonl, TensorBoard events; an existing run there is resumed). Multi-host:
``--config.distributed.coordinator_address=HOST:PORT --config.distributed.num_processes=N
--config.distributed.process_id=I`` (or the JAX_* environment variables, or ``--config.distributed.auto`` on TPU
pods and SLURM). All logic lives in ``vggt_jax.train``.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from vggt_jax.train.loop import initialize_distributed, run

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints and metrics")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:
        # orbax and grain log every save at INFO; metrics are printed on stdout by the writer.
        logging.set_verbosity(logging.WARNING)
    initialize_distributed(_CONFIG.value.distributed)
    summary = run(_CONFIG.value, _WORKDIR.value)
    logging.info("done: %s", summary)


if __name__ == "__main__":
    app.run(main)
