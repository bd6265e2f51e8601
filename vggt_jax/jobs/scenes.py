"""The scenes of a batch job: read from a manifest or a root folder, sampled to a frame count, split between
processes.

A manifest is JSON lines, one scene each::

    {"id": "kitchen", "images": "/data/kitchen"}                       # a folder (its images, sorted by name)
    {"id": "street_01", "images": "/data/street/*.jpg"}                 # a glob
    {"id": "clip_7", "images": "/data/clip_7.mp4", "fps": 2}            # a video, sampled at fps
    {"id": "hall", "images": "/data/hall", "frames": [0, 5, 10, 15]}    # an explicit frame list

A root folder gives one scene per sub-folder, its name the id. Ids must be unique and usable as folder names.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vggt_jax.inference.preprocess import ImageInput, ImageInputError, resolve_inputs

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class ManifestError(ValueError):
    """The scene list cannot be read; the message names the line and the fix."""


@dataclasses.dataclass(frozen=True)
class Scene:
    id: str
    images: str  # a folder, a glob or a video
    frames: tuple[int, ...] | None = None  # explicit frame indices into the source's images
    fps: float = 1.0  # a video's sampling rate

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def read_scenes(source: str | Path) -> list[Scene]:
    """The scenes of a manifest (``.jsonl`` / ``.json`` lines file) or of a root folder's sub-folders."""
    path = Path(source).expanduser()
    if path.is_dir():
        scenes = [Scene(p.name, str(p)) for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        if not scenes:
            raise ManifestError(f"{path} has no sub-folders; pass a root with one folder per scene, or a manifest")
    elif path.is_file():
        scenes = [_scene(line, path, k + 1) for k, line in enumerate(path.read_text().splitlines()) if line.strip()]
        if not scenes:
            raise ManifestError(f"manifest {path} lists no scene")
    else:
        raise ManifestError(f"--scenes {path}: no such manifest or folder")
    seen: dict[str, int] = {}
    for k, scene in enumerate(scenes):
        if not SAFE_ID.match(scene.id):
            raise ManifestError(
                f"scene id {scene.id!r} ({path}, scene {k + 1}) is not usable as a folder name: letters, digits, "
                "'.', '_', '-', starting with a letter or digit"
            )
        if scene.id in seen:
            raise ManifestError(f"scene id {scene.id!r} appears twice in {path} (scenes {seen[scene.id]} and {k + 1})")
        seen[scene.id] = k + 1
    return scenes


def _scene(line: str, path: Path, number: int) -> Scene:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}:{number}: not JSON ({e.msg}); one JSON object per line") from None
    if not isinstance(row, dict) or "images" not in row:
        raise ManifestError(f'{path}:{number}: a scene needs "images" (a folder, glob or video) and an "id"')
    images = str(row["images"])
    if not Path(images).is_absolute() and not images.startswith("~"):
        images = str(path.parent / images)  # relative to the manifest
    frames = row.get("frames")
    if frames is not None and (not isinstance(frames, list) or not all(isinstance(f, int) and f >= 0 for f in frames)):
        raise ManifestError(f'{path}:{number}: "frames" must be a list of frame indices >= 0')
    unknown = set(row) - {"id", "images", "frames", "fps"}
    if unknown:
        raise ManifestError(f"{path}:{number}: unknown key(s) {sorted(unknown)}; a scene has id, images, frames, fps")
    return Scene(str(row.get("id", Path(images).stem)), images, tuple(frames) if frames else None, row.get("fps", 1.0))


def sample_indices(count: int, frames: int | None, stride: int | None) -> np.ndarray:
    """Which of ``count`` images a scene keeps: every ``stride``-th, then at most ``frames`` of those spread
    uniformly from the first to the last (rounded linspace); all of them with neither."""
    indices = np.arange(count)
    if stride:
        indices = indices[::stride]
    if frames and len(indices) > frames:
        indices = indices[np.round(np.linspace(0, len(indices) - 1, frames)).astype(int)]
    return indices


def scene_inputs(scene: Scene, frames: int | None, stride: int | None) -> tuple[list[int], list[ImageInput]]:
    """The scene's sampled images, not decoded yet (a video's frames are decoded once, to count and keep them),
    and their indices into the source's images."""
    items = list(resolve_inputs(scene.images, fps=scene.fps))
    indices = np.arange(len(items))
    if scene.frames is not None:
        bad = [f for f in scene.frames if f >= len(items)]
        if bad:
            raise ImageInputError(f"frames {bad} of scene {scene.id} are beyond its {len(items)} images")
        indices = np.asarray(scene.frames)
    indices = indices[sample_indices(len(indices), frames, stride)]
    return [int(i) for i in indices], [items[i] for i in indices]


def process_share(scenes: Sequence[Scene], process_index: int, process_count: int) -> list[Scene]:
    """This process's scenes: every ``process_count``-th from ``process_index``, in manifest order (the same split
    on every restart)."""
    return list(scenes[process_index::process_count])
