"""The sharded train state: abstract shapes, shardings, initialisation in place, and the jitted steps.

Nothing is ever materialised unsharded: the state's shapes come from ``jax.eval_shape``, its shardings from the
rules (``sharding.py``), and it is created by a jitted init with those ``out_shardings`` (random init), by the
converter's ``place`` callback or orbax restoring straight into them (pretrained weights, checkpoints).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vggt_jax.config import VGGTConfig
from vggt_jax.model.vggt import VGGT
from vggt_jax.train import optimizer as opt_lib
from vggt_jax.train import sharding as sh
from vggt_jax.train import step as step_lib

# The batch entries the steps read; the rest (scene ids, scales) stays on the host.
BATCH_KEYS = (
    "images",
    "extrinsics",
    "intrinsics",
    "depths",
    "world_points",
    "point_masks",
    "frame_mask",
    "tracks",
    "track_vis",
    "track_mask",
)


def model_config(cfg: Any) -> VGGTConfig:
    """``config.model`` (variant, heads, dtype, remat, attention, heads_frames_chunk, scan_layers) -> VGGTConfig;
    disabled heads are removed."""
    from vggt_jax.config import get_config
    from vggt_jax.model.layout import with_scan_layers

    mc = get_config(cfg.variant).replace(
        dtype=cfg.dtype, remat=cfg.remat, attention=cfg.attention, heads_frames_chunk=cfg.heads_frames_chunk
    )
    mc = with_scan_layers(mc, bool(cfg.get("scan_layers", False)))
    heads = set(cfg.heads)
    unknown = heads - {"camera", "depth", "point", "track"}
    if unknown:
        raise ValueError(f"config.model.heads has unknown head(s) {sorted(unknown)}")
    return mc.replace(
        camera_head=mc.camera_head if "camera" in heads else None,
        depth_head=mc.depth_head if "depth" in heads else None,
        point_head=mc.point_head if "point" in heads else None,
        track_head=mc.track_head if "track" in heads else None,
    )


def abstract_model_params(config: VGGTConfig) -> dict:
    """``params`` (without the ``{'params': }`` wrapper) as ShapeDtypeStructs."""
    from vggt_jax.convert import abstract_params

    return abstract_params(config)["params"]


@dataclasses.dataclass
class Trainer:
    """Everything a training loop needs, for one config and mesh."""

    config: Any
    mesh: Mesh
    model: VGGT
    tx: Any
    opt_info: dict
    abstract_params: dict
    param_shardings: dict
    abstract_state: dict  # ShapeDtypeStructs carrying their shardings
    state_shardings: dict

    @classmethod
    def create(cls, config: Any, mesh: Mesh, total_steps: int | None = None) -> Trainer:
        model = VGGT(model_config(config.model))
        params = abstract_model_params(model.config)
        tx, info = opt_lib.make_optimizer(config.optim, params, total_steps or config.total_steps)
        param_shardings = sh.param_shardings(params, mesh)

        def init_state_shapes():
            p = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
            return _state(p, tx.init(p), jax.random.PRNGKey(0))

        shapes = jax.eval_shape(init_state_shapes)
        shardings = sh.tree_shardings(shapes, params, param_shardings, mesh)
        abstract = jax.tree.map(lambda s, sd: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sd), shapes, shardings)
        return cls(config, mesh, model, tx, info, params, param_shardings, abstract, shardings)

    # --------------------------------------------------------------------------------------------- state creation
    def init_state(self, seed: int) -> dict:
        """Random init of params and optimiser state, each leaf created on its shards."""
        images = jnp.zeros((1, 2, 3, 2 * self.model.config.patch_size, 2 * self.model.config.patch_size))
        queries = jnp.zeros((1, 1, 2)) if self.model.config.track_head is not None else None

        def init(rng):
            params = self.model.init(rng, images, queries)["params"]
            return _state(params, self.tx.init(params), jax.random.fold_in(rng, 1))

        rng = jax.random.PRNGKey(seed)
        return jax.jit(init, out_shardings=self.state_shardings)(rng)

    def state_from_params(self, params: dict, seed: int) -> dict:
        """A fresh state around given (sharded) params: the optimiser state is created in place."""
        params = prune_params(params, self.abstract_params)

        def init(p):
            return _state(p, self.tx.init(p), jax.random.PRNGKey(seed))

        return jax.jit(init, out_shardings=self.state_shardings)(params)

    def load_pretrained(self, path: str, seed: int) -> dict:
        """Params from a converted checkpoint directory (``python -m vggt_jax.convert``; orbax restores each shard in
        place) or an official ``.safetensors`` / ``.pt`` file (converted one tensor at a time, each placed straight
        into its shards); heads the training model does not have are dropped."""
        from pathlib import Path

        from vggt_jax.config import get_config
        from vggt_jax.convert import convert_state_dict
        from vggt_jax.convert.checkpoint import is_checkpoint, load_checkpoint, load_config
        from vggt_jax.model.layout import stack_layers, unstack_layers, with_scan_layers

        scan = self.model.config.aggregator.scan_layers
        if is_checkpoint(path):
            ckpt_config = load_config(path)
            ckpt_params = abstract_model_params(ckpt_config)
            shardings = {"params": sh.param_shardings(ckpt_params, self.mesh)}
            _, params = load_checkpoint(path, shardings=shardings)
            params = params["params"]
            if ckpt_config.aggregator.scan_layers != scan:  # restored sharded in its own layout, then re-laid out
                params = (stack_layers if scan else unstack_layers)(params, ckpt_config)
            return self.state_from_params(params, seed)
        if not Path(path).is_file():
            raise FileNotFoundError(f"init_from={path!r} is neither a converted checkpoint nor a weights file")

        full = get_config(self.model.config.name).replace(param_dtype=self.model.config.param_dtype)
        full = with_scan_layers(full, scan)
        full_params = abstract_model_params(full)
        by_path = dict(
            zip(
                (tuple(str(k.key) for k in p) for p, _ in jax.tree_util.tree_leaves_with_path(full_params)),
                jax.tree.leaves(sh.param_shardings(full_params, self.mesh)),
                strict=True,
            )
        )

        def place(key, array):
            # Every process reads the same file and keeps only its own shards.
            return jax.make_array_from_callback(array.shape, by_path[key], lambda index: array[index])

        params = convert_state_dict(path, full, place=place)
        return self.state_from_params(params["params"], seed)

    # ---------------------------------------------------------------------------------------------------- steps
    def batch_shardings(self, batch: Mapping[str, Any]) -> dict:
        return {k: sh.batch_sharding(self.mesh, np.ndim(v)) for k, v in batch.items()}

    def global_batch(self, local: Mapping[str, np.ndarray]) -> dict:
        """This process's part of a batch (numpy) -> global jax arrays split over the data-parallel axes."""
        out = {}
        for k in BATCH_KEYS:
            if k in local:
                sharding = sh.batch_sharding(self.mesh, np.ndim(local[k]))
                out[k] = jax.make_array_from_process_local_data(sharding, np.asarray(local[k]))
        return out

    @property
    def loss_group_size(self) -> int:
        """``config.loss.group_size``; 0 means one group per data-parallel shard, as a DDP worker's local batch."""
        return int(self.config.loss.group_size)

    def _group_size(self, batch_size: int) -> int:
        g = self.loss_group_size
        if g == 0:
            dp = sh.data_parallel_size(self.mesh)
            g = max(batch_size // dp, 1)
        return g

    def train_step_jit(self, batch: Mapping[str, Any]):
        """The jitted train step for batches shaped like ``batch`` (arrays or ShapeDtypeStructs): explicit in/out
        shardings, the state donated. ``.lower(abstract_state, batch).compile()`` compiles it ahead of time."""
        b = batch["images"].shape[0]
        fn = step_lib.make_train_step(
            self.model,
            self.tx,
            self.opt_info,
            _loss_config(self.config.loss),
            accum_steps=self.config.optim.accum_steps,
            group_size=self._group_size(b // self.config.optim.accum_steps),
            normalize_gt=self.config.loss.normalize_gt,
        )
        replicated = NamedSharding(self.mesh, PartitionSpec())
        return jax.jit(
            fn,
            in_shardings=(self.state_shardings, self.batch_shardings(batch)),
            out_shardings=(self.state_shardings, replicated),
            donate_argnums=(0,),
        )

    def jit_train_step(self):
        """-> ``train_step(state, batch) -> (state, metrics)``, one compiled program per batch shape."""
        cache: dict = {}

        def call(state, batch):
            key = tuple(sorted((k, v.shape) for k, v in batch.items()))
            if key not in cache:
                cache[key] = self.train_step_jit(batch)
            return cache[key](state, batch)

        return call

    def jit_eval_step(self):
        """-> ``eval_step(params, batch) -> metrics arrays`` (replicated, so every process can read them)."""
        cache: dict = {}

        def call(params, batch):
            key = tuple(sorted((k, v.shape) for k, v in batch.items()))
            if key not in cache:
                fn = step_lib.make_eval_step(
                    self.model,
                    _loss_config(self.config.loss),
                    self._group_size(batch["images"].shape[0]),
                    self.config.loss.normalize_gt,
                )
                cache[key] = jax.jit(
                    fn,
                    in_shardings=(self.param_shardings, self.batch_shardings(batch)),
                    out_shardings=NamedSharding(self.mesh, PartitionSpec()),
                )
            return cache[key](params, batch)

        return call


def _state(params, opt_state, rng) -> dict:
    return {
        "params": params,
        "opt_state": opt_state,
        "step": jnp.zeros((), jnp.int32),
        "rng": rng,
        "skipped": jnp.zeros((), jnp.int32),
    }


def _loss_config(cfg: Any) -> dict:
    """The ``loss`` config block as plain dicts for ``multitask_loss`` (terms, each with ``weight``, or None)."""
    out = {}
    for name in ("camera", "depth", "point", "track"):
        term = cfg.get(name)
        out[name] = None if term is None else dict(term)
    return out


def prune_params(params: dict, abstract: dict) -> dict:
    """Keep the parameters the training model has (e.g. drop the point and track heads of a full checkpoint),
    checking their shapes."""
    flat, want = flax.traverse_util.flatten_dict(params), flax.traverse_util.flatten_dict(abstract)
    missing = [k for k in want if k not in flat]
    if missing:
        raise ValueError(f"the pretrained checkpoint lacks {len(missing)} parameters, e.g. {'/'.join(missing[0])}")
    bad = [k for k in want if tuple(flat[k].shape) != tuple(want[k].shape)]
    if bad:
        raise ValueError(
            f"pretrained parameter {'/'.join(bad[0])} has shape {flat[bad[0]].shape}, want {want[bad[0]].shape}"
        )
    return flax.traverse_util.unflatten_dict({k: flat[k] for k in want})
