"""The batch job's output (``python -m vggt_jax.batch ... --outputs cameras,depth,images``) as a training source:
pseudo-labels for another model.

Each "done" scene of the index (``vggt_jax.jobs.index.read_index``) becomes a ``SceneRecord``: the frames are the
model-input images the job wrote (``images/``), the depth is the predicted ``depth.npy`` (read one frame at a time
from the memory map), the cameras are the predicted ones in the same pixels (``cameras.npz``: ``intrinsic``,
``extrinsic``). The images must have been written (``--outputs`` with ``images``): depth and intrinsics are in the
model input's pixels, which the original photos are not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggt_jax.data.sources import DataError, FrameRecord, SceneRecord, report

NEEDED = ("cameras", "depth", "images")


def load_batch_output(path, on_error: str = "skip") -> list[SceneRecord]:
    """The scenes of a batch job's ``--out`` folder; failed scenes are left out."""
    from vggt_jax.jobs.index import read_index
    from vggt_jax.jobs.outputs import image_stems

    root = Path(path)
    scenes = []
    for row in read_index(root):
        if row["status"] != "done":
            continue
        missing = [k for k in NEEDED if k not in row["outputs"]]
        if missing:
            report(
                DataError(
                    row["id"],
                    None,
                    f"the batch job did not write {missing}; run it with --outputs "
                    "cameras,depth,images (and any others)",
                ),
                on_error,
            )
            continue
        try:
            with np.load(root / row["outputs"]["cameras"]) as cams:
                extrinsic, intrinsic = cams["extrinsic"], cams["intrinsic"]
            depth_path = root / row["outputs"]["depth"]
            h, w = row["image_hw"]
            frames = tuple(
                FrameRecord(
                    name=stem,
                    image_path=str(root / row["outputs"]["images"] / f"{stem}.png"),
                    extrinsic=np.asarray(extrinsic[k], np.float64),
                    intrinsic=np.asarray(intrinsic[k], np.float64),
                    depth_path=str(depth_path),
                    depth_format="npy_stack",
                    depth_index=k,
                    image_size=(h, w),
                    depth_size=(h, w),
                )
                for k, stem in enumerate(image_stems(row["frames"]))
            )
        except (OSError, KeyError, ValueError) as e:
            report(DataError(row["id"], None, f"cannot read its outputs ({e})"), on_error)
            continue
        scenes.append(SceneRecord(row["id"], frames))
    return scenes
