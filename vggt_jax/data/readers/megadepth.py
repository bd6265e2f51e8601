"""MegaDepth v1: per-scene dense reconstructions, their HDF5 depth maps and undistorted COLMAP models.

Layout (one scene per ``dense<k>`` folder, named ``<scene>/dense<k>``, e.g. ``0001/dense0``)::

    MegaDepth_v1/<scene>/dense<k>/imgs/<name>.jpg          undistorted images
    MegaDepth_v1/<scene>/dense<k>/depths/<stem>.h5         HDF5, float32 dataset "depth" [H, W] (same size as the
                                                           image), 0 = invalid (filtered out by MegaDepth)
    MegaDepth_v1/<scene>/dense<k>/sparse/                  the undistorted COLMAP model of that reconstruction
                                                           (cameras, images, points3D; .bin or .txt; or sparse/0/)

Conventions:

* The model is read with pycolmap through ``vggt_jax.geometry.colmap_io`` (the project's one COLMAP reader): poses are
  camera-from-world with OpenCV axes; the cameras are PINHOLE after undistortion, with COLMAP's pixel centres at
  ``i + 0.5``, so principal points move by -0.5 px into this project's convention. A camera with distortion is bad
  data.
* Depth is camera z in the model's units: metres up to the unknown scale of the SfM reconstruction, the same scale as
  the model's translations (MegaDepth's MVS depth comes from the same reconstruction). An image is matched to
  ``depths/<stem>.h5`` by its file stem.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from vggt_jax.data.readers import colmap
from vggt_jax.data.sources import SceneRecord, load_each
from vggt_jax.geometry import colmap_io


def _dense_folders(root: Path) -> list[Path]:
    """The ``dense<k>`` folders under ``root`` (MegaDepth_v1/, one <scene>/, or one dense<k>/ itself)."""
    if (root / "imgs").is_dir():
        return [root]
    for pattern in ("dense*", "*/dense*"):
        found = sorted(p for p in root.glob(pattern) if p.is_dir() and (p / "imgs").is_dir())
        if found:
            return found
    return []


def load_megadepth_scene(
    folder: str | Path, name: str | None = None, on_error: str = "raise", check_files: bool = True
) -> SceneRecord:
    """Read one ``dense<k>`` folder into a ``SceneRecord`` (frames sorted by image name).

    Args:
      folder: the ``dense<k>`` folder.
      name: the scene name (default ``<scene>/dense<k>`` from the two folder names).
      on_error: "raise" or "skip" (log and drop the frame) for an image that is unregistered, has a distorted
        camera, or misses its image or depth file.
      check_files: check that image and depth files exist now (otherwise only when loaded).
    """
    folder = Path(folder)
    name = name or f"{folder.parent.name}/{folder.name}"
    model = colmap.read_scene_model(folder, name)
    frames = colmap.model_frames(
        model,
        name,
        lambda image: folder / "imgs" / image,
        lambda image: folder / "depths" / f"{Path(image).stem}.h5",
        "h5",
        on_error,
        check_files,
        depth_size_checked=True,
    )
    return SceneRecord(name, tuple(frames))


def load_megadepth(
    root: str | Path, scenes=None, on_error: str = "raise", check_files: bool = True
) -> list[SceneRecord]:
    """Every ``dense<k>`` reconstruction under ``root`` (``MegaDepth_v1/``, one ``<scene>/`` or one ``dense<k>/``).

    ``scenes``: if given, only these names (``"<scene>/dense<k>"``) or scene ids (``"<scene>"``, all its dense
    folders). A reconstruction whose model cannot be read is raised or, with ``on_error="skip"``, logged and dropped.
    """
    root = Path(root)
    folders = _dense_folders(root)
    if not folders:
        raise FileNotFoundError(f"no MegaDepth dense<k>/imgs folder under {root}")

    def wanted(folder: Path) -> bool:
        return folder.parent.name in scenes or f"{folder.parent.name}/{folder.name}" in scenes

    load = functools.partial(load_megadepth_scene, on_error=on_error, check_files=check_files)
    return load_each(folders, load, on_error, None if scenes is None else wanted)


def write_megadepth_scene(
    root: str | Path,
    scene: str,
    images: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    depths: np.ndarray,
    dense: int = 0,
    names=None,
    binary: bool = True,
) -> Path:
    """Write frames as ``root/<scene>/dense<dense>/`` (for tests and exports); returns that folder.

    ``images [S, H, W, 3]`` uint8 (stored losslessly, as PNG data under MegaDepth's ``.jpg`` names), ``extrinsics
    [S, 3, 4]``, ``intrinsics [S, 3, 3]`` (one PINHOLE camera per image), ``depths [S, H, W]`` float32 (0 = invalid).
    """
    import h5py

    folder = Path(root) / scene / f"dense{dense}"
    names = list(names or [f"{i:06d}.jpg" for i in range(len(images))])
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    (folder / "depths").mkdir(parents=True, exist_ok=True)
    for image, depth, name in zip(images, depths, names, strict=True):
        Image.fromarray(np.asarray(image)).save(folder / "imgs" / name, format="PNG")
        with h5py.File(folder / "depths" / f"{Path(name).stem}.h5", "w") as f:
            f.create_dataset("depth", data=np.asarray(depth, np.float32))
    sizes = np.array([image.shape[:2] for image in images])
    rec = colmap_io.new_reconstruction(np.asarray(extrinsics), np.asarray(intrinsics), sizes, names)
    (folder / "sparse").mkdir(exist_ok=True)
    for file_name, content in colmap_io.model_files(rec, "bin" if binary else "txt").items():
        (folder / "sparse" / file_name).write_bytes(content)
    return folder
