"""Readers for real multi-view data layouts -> ``sources.SceneRecord`` lists, and the registry the pipeline uses.

    scenes = load_scenes("scannet", "/data/scannet/scans", min_frames=8, stride=10)
    source = sources.FileSceneSource(scenes)

``LAYOUTS`` maps each layout name to its loader, ``loader(path, on_error, **options) -> list[SceneRecord]``:

* ``colmap``: a COLMAP scene folder (one with ``sparse/``) or a folder of them (``colmap.load_colmap_scene``);
* ``co3d``: a CO3Dv2 root (``co3d.load_co3d``; options ``categories``, ``sequences``, ...);
* ``scannet``: SensReader exports (``scannet.load_scannet``; ``stride``, ``resolution``, ...);
* ``megadepth``: MegaDepth v1 dense reconstructions (``megadepth.load_megadepth``);
* ``replica``: NICE-SLAM's Replica renders (``replica.load_replica``; ``stride``, camera parameters);
* ``folder``: the generic images/depths/poses/intrinsics layout (``folder.load_folders``);
* ``batch``: the output of ``python -m vggt_jax.batch`` with ``--outputs cameras,depth,images`` (pseudo-labels;
  ``batch_output.load_batch_output``).

Readers are imported when used: the registry alone loads neither pycolmap nor h5py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vggt_jax.data.sources import DataError, SceneRecord, report


def _colmap(path, on_error: str, **options) -> list[SceneRecord]:
    from vggt_jax.data.readers.colmap import load_colmap_scene

    root = Path(path)
    folders = [root] if (root / "sparse").is_dir() else sorted(p for p in root.iterdir() if (p / "sparse").is_dir())
    scenes = []
    for folder in folders:
        try:
            scenes.append(load_colmap_scene(folder, on_error=on_error, **options))
        except DataError as e:
            report(e, on_error)
    return scenes


def _co3d(path, on_error: str, categories=None, **options) -> list[SceneRecord]:
    from vggt_jax.data.readers.co3d import load_co3d

    # An empty list (config.py's default) means every category, as in load_co3d.
    return load_co3d(path, tuple(categories) if categories else None, on_error=on_error, **options)


def _scannet(path, on_error: str, **options) -> list[SceneRecord]:
    from vggt_jax.data.readers.scannet import load_scannet

    return load_scannet(path, on_error=on_error, **options)


def _megadepth(path, on_error: str, **options) -> list[SceneRecord]:
    from vggt_jax.data.readers.megadepth import load_megadepth

    return load_megadepth(path, on_error=on_error, **options)


def _replica(path, on_error: str, **options) -> list[SceneRecord]:
    from vggt_jax.data.readers.replica import load_replica

    return load_replica(path, on_error=on_error, **options)


def _folder(path, on_error: str, **options) -> list[SceneRecord]:
    from vggt_jax.data.readers.folder import load_folders

    return load_folders(path, on_error=on_error, **options)


def _batch(path, on_error: str, **options) -> list[SceneRecord]:
    from vggt_jax.data.readers.batch_output import load_batch_output

    return load_batch_output(path, on_error=on_error, **options)


LAYOUTS: dict[str, Callable[..., list[SceneRecord]]] = dict(
    colmap=_colmap,
    co3d=_co3d,
    scannet=_scannet,
    megadepth=_megadepth,
    replica=_replica,
    folder=_folder,
    batch=_batch,
)


def load_scenes(kind: str, path: str, min_frames: int = 2, on_error: str = "skip", **options) -> list[SceneRecord]:
    """The scenes of layout ``kind`` (one of ``LAYOUTS``) under ``path``, those with fewer than ``min_frames`` usable
    frames dropped (logged). ``on_error``: "skip" (log and drop bad frames and unreadable scenes) or "raise".
    ``options`` go to the layout's reader (module docstring)."""
    if kind not in LAYOUTS:
        raise ValueError(f"unknown scene layout {kind!r}; the layouts are {sorted(LAYOUTS)}")
    scenes = []
    for scene in LAYOUTS[kind](path, on_error, **options):
        if len(scene.frames) < min_frames:
            msg = f"{len(scene.frames)} usable frames, fewer than min_frames={min_frames}"
            report(DataError(scene.name, None, msg), "skip")
            continue
        scenes.append(scene)
    return scenes
