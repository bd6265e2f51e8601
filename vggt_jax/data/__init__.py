"""Training data: synthetic scenes, readers of real layouts, a TFDS builder and the grain pipeline.

    from vggt_jax import data
    cfg = data.get_config()                           # ml_collections; usually config.data of an experiment
    it = data.make_train_iterator(cfg, seed=0)        # batches of dicts, see vggt_jax.data.pipeline
    shapes = data.batch_shapes(cfg)                   # every (B, S, H, W) a batch can have

Sources of scenes (``sources`` module docstring has the protocol): ``SyntheticSource`` (procedural, exact GT),
``FileSceneSource(load_co3d(root))``, ``FileSceneSource([load_colmap_scene(folder)])``, and
``TfdsSceneSource(data_dir)`` over a dataset written by ``build_tfds``. Imports are lazy: ``import vggt_jax.data``
alone loads neither grain nor tensorflow_datasets.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "get_config": "config",
    "batch_shapes": "config",
    "validate": "config",
    "make_train_iterator": "pipeline",
    "make_source": "pipeline",
    "channels_first": "pipeline",
    "SyntheticScene": "synthetic",
    "SyntheticSource": "synthetic",
    "DataError": "sources",
    "FileSceneSource": "sources",
    "load_colmap_scene": "readers.colmap",
    "write_colmap_scene": "readers.colmap",
    "load_co3d": "readers.co3d",
    "write_co3d_category": "readers.co3d",
    "build_tfds": "tfds_builder",
    "TfdsSceneSource": "tfds_builder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"vggt_jax.data.{_EXPORTS[name]}"), name)
