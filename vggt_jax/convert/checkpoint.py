"""Orbax checkpoints of converted params, with the model config beside them.

Layout of ``CKPT_DIR``: ``config.json`` (``VGGTConfig.to_json``) and ``params/`` (an orbax StandardCheckpointer
tree of ``{'params': ...}``). A checkpoint is written into a sibling temporary folder and renamed into place at
the end, so a failed conversion never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp

from vggt_jax.config import VGGTConfig
from vggt_jax.staging import staged_directory

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"


def save_checkpoint(directory: str | os.PathLike, config: VGGTConfig, params: dict, overwrite: bool = False) -> Path:
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(f"{directory} exists and is not empty; choose another --out or remove it first")
    with staged_directory(directory, directory.with_name(directory.name + ".partial")) as tmp:
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(tmp / PARAMS_DIR, params)
            ckptr.wait_until_finished()
        (tmp / CONFIG_FILE).write_text(config.to_json())
    return directory


def is_checkpoint(directory: str | os.PathLike) -> bool:
    d = Path(directory)
    return (d / CONFIG_FILE).is_file() and (d / PARAMS_DIR).is_dir()


def load_config(directory: str | os.PathLike) -> VGGTConfig:
    d = Path(directory)
    if not is_checkpoint(d):
        raise FileNotFoundError(
            f"{d} is not a vggt_jax checkpoint (expected {CONFIG_FILE} and {PARAMS_DIR}/); make one with "
            "`python -m vggt_jax.convert model.safetensors --out DIR`"
        )
    return VGGTConfig.from_json((d / CONFIG_FILE).read_text())


def load_checkpoint(
    directory: str | os.PathLike, dtype: str | None = None, shardings=None, scan_layers: bool | None = None
) -> tuple[VGGTConfig, dict]:
    """-> (config, params). ``dtype`` casts the params after loading (e.g. "float32" from a bf16 checkpoint);
    ``shardings``: a pytree of shardings matching the params to restore straight into (default: device 0).
    ``scan_layers``: the block layout to return (``AggregatorConfig.scan_layers``; default the checkpoint's own);
    another layout than the checkpoint's is made after restoring on device 0, holding the blocks twice meanwhile."""
    import orbax.checkpoint as ocp

    from vggt_jax.convert.convert import abstract_params
    from vggt_jax.model.layout import stack_layers, unstack_layers, with_scan_layers

    directory = Path(directory).absolute()
    config = load_config(directory)
    if scan_layers is not None and scan_layers != config.aggregator.scan_layers:
        if shardings is not None:
            raise ValueError(
                f"{directory} holds the {'scan' if config.aggregator.scan_layers else 'unrolled'} block layout; "
                "restoring into shardings needs that layout (pass scan_layers=None), or convert it once without "
                "shardings and save it with save_checkpoint"
            )
        config, params = load_checkpoint(directory, dtype)
        relayout = stack_layers if scan_layers else unstack_layers
        return with_scan_layers(config, scan_layers), relayout(params, config)
    abstract = abstract_params(config)
    local = shardings is None
    if local:
        # This process's first device: with several processes, jax.devices()[0] is process 0's.
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        shardings = jax.tree_util.tree_map(lambda _: device, abstract)
    target = jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, jnp.dtype(config.param_dtype), sharding=s), abstract, shardings
    )
    options = {}
    if local and jax.process_count() > 1:
        # Onto this process's own device: a local read. Orbax would otherwise sync every process of the job around
        # the restore, and one whose work is done (a batch job's) never joins it.
        me = jax.process_index()
        options["multiprocessing_options"] = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    with ocp.StandardCheckpointer(**options) as ckptr:
        params = ckptr.restore(directory / PARAMS_DIR, target)
    if dtype is not None and jnp.dtype(dtype) != jnp.dtype(config.param_dtype):
        params = jax.tree_util.tree_map(lambda x: x.astype(dtype), params)
        config = config.replace(param_dtype=str(jnp.dtype(dtype)))
    return config, params
