"""A TFDS dataset of multi-view scenes in ArrayRecord files (built and read without tensorflow).

    build_tfds("/data/tfds", {"train": SyntheticSource(1000), "val": FileSceneSource(load_co3d(root))})
    source = TfdsSceneSource("/data/tfds", split="train")       # a scene source for the pipeline

One record per frame: ``image`` (PNG or JPEG, fed to TFDS as a PIL image, which is what lets it encode without
tensorflow), ``depth`` float32 [H, W] (zlib-compressed tensor, exact), ``extrinsic`` [3, 4] and ``intrinsic`` [3, 3]
float64 (this project's conventions), ``has_depth``, ``scene``/``frame`` names and indices. Records keep generation
order (``disable_shuffling``: sorted by their zero-padded counter keys), so a scene's frames are consecutive records;
the ``(scene name, first record, frame count)`` table of each split is stored in the dataset's metadata.json. Random
access is ``tfds.data_source`` (ArrayRecord), so only the sampled frames are ever read and decoded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from vggt_jax.data.sources import DataError, check_frame, report

NAME = "vggt_scenes"
VERSION = "1.0.0"
# Unencoded float tensors are serialised as float32 lists; raw bytes keep the float64 cameras exact.
_RAW = tfds.features.Encoding.BYTES


class VggtScenes(tfds.core.GeneratorBasedBuilder):
    """Frames of multi-view scenes, one record each, scene by scene."""

    VERSION = tfds.core.Version(VERSION)
    # TFDS locates a builder's source folder (for checksums files) through `importlib_resources`, a backport that is
    # not installed here; this builder downloads nothing, so it has no such folder.
    code_path = None

    def __init__(self, *, splits: dict | None = None, image_format: str = "png", on_error: str = "raise", **kwargs):
        if image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
        self._splits, self._image_format, self._on_error = splits or {}, image_format, on_error
        super().__init__(file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Multi-view scenes for VGGT training: images, depth, OpenCV cameras; one record per frame.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format=self._image_format),
                    "depth": tfds.features.Tensor(
                        shape=(None, None), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB
                    ),
                    "has_depth": tfds.features.Scalar(dtype=np.bool_),
                    "extrinsic": tfds.features.Tensor(shape=(3, 4), dtype=np.float64, encoding=_RAW),
                    "intrinsic": tfds.features.Tensor(shape=(3, 3), dtype=np.float64, encoding=_RAW),
                    "scene": tfds.features.Text(),
                    "frame": tfds.features.Text(),
                    "scene_index": tfds.features.Scalar(dtype=np.int32),
                    "frame_index": tfds.features.Scalar(dtype=np.int32),
                }
            ),
            disable_shuffling=True,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        if not self._splits:
            raise ValueError("VggtScenes needs splits={name: scene source} to build")
        return {name: self._generate_examples(name, source) for name, source in self._splits.items()}

    def _generate_examples(self, split: str, source):
        table, count = [], 0
        for index in range(len(source)):
            name, start = source.scene_name(index), count
            for frame in range(source.num_frames(index)):
                try:
                    f = check_frame(source.load_frame(index, frame), name)
                except DataError as e:
                    report(e, self._on_error)
                    continue
                yield (
                    f"{count:012d}",
                    {
                        "image": Image.fromarray(f["image"]),
                        "depth": np.asarray(f["depth"], np.float32),
                        "has_depth": bool(f["has_depth"]),
                        "extrinsic": f["extrinsic"],
                        "intrinsic": f["intrinsic"],
                        "scene": name,
                        "frame": str(f.get("name", frame)),
                        "scene_index": len(table),
                        "frame_index": count - start,
                    },
                )
                count += 1
            if count > start:
                table.append([name, start, count - start])
            else:
                report(DataError(name, None, "no usable frame; scene left out"), self._on_error)
        self.info.metadata.setdefault("scenes", {})[split] = table


def build_tfds(data_dir: str | Path, splits: dict, image_format: str = "png", on_error: str = "raise") -> Path:
    """Write ``splits`` (``{split name: scene source}``) under ``data_dir``; returns the dataset directory."""
    builder = VggtScenes(data_dir=str(data_dir), splits=splits, image_format=image_format, on_error=on_error)
    builder.download_and_prepare()
    return Path(builder.data_dir)


def _dataset_dir(path: str | Path) -> Path:
    path = Path(path)
    if (path / "dataset_info.json").exists():
        return path
    versions = sorted((path / NAME).glob("*/dataset_info.json"), key=lambda p: tfds.core.Version(p.parent.name))
    if not versions:
        raise FileNotFoundError(f"no built {NAME} dataset in {path} (expected {path / NAME}/<version>/)")
    return versions[-1].parent


class TfdsSceneSource:
    """A scene source over a built ``vggt_scenes`` dataset (``data_dir`` or the version directory itself)."""

    def __init__(self, path: str | Path, split: str = "train"):
        self.dataset_dir, self.split = _dataset_dir(path), split
        tables = tfds.builder_from_directory(str(self.dataset_dir)).info.metadata.get("scenes", {})
        if split not in tables:
            raise ValueError(f"{self.dataset_dir} has no split {split!r}; it has {sorted(tables)}")
        self.table = [(name, int(start), int(n)) for name, start, n in tables[split]]
        self._source = None

    def __getstate__(self) -> dict:
        # The ArrayRecord reader holds open files; each process (grain worker) reopens its own.
        return dict(self.__dict__, _source=None)

    def _records(self):
        if self._source is None:
            self._source = tfds.builder_from_directory(str(self.dataset_dir)).as_data_source(split=self.split)
        return self._source

    def __len__(self) -> int:
        return len(self.table)

    def scene_name(self, index: int) -> str:
        return self.table[index][0]

    def num_frames(self, index: int) -> int:
        return self.table[index][2]

    def load_frame(self, index: int, frame: int) -> dict:
        name, start, count = self.table[index]
        if not 0 <= frame < count:
            raise IndexError(f"scene {name!r} has {count} frames, asked for frame {frame}")
        rec = self._records()[start + frame]
        if rec["scene"].decode() != name or int(rec["frame_index"]) != frame:
            raise DataError(
                name,
                str(frame),
                f"record {start + frame} holds scene {rec['scene'].decode()!r} frame "
                f"{int(rec['frame_index'])}: the dataset's scene table does not match its records",
            )
        return dict(
            image=np.asarray(rec["image"]),
            depth=np.asarray(rec["depth"], np.float32),
            extrinsic=np.asarray(rec["extrinsic"], np.float64),
            intrinsic=np.asarray(rec["intrinsic"], np.float64),
            has_depth=bool(rec["has_depth"]),
            name=rec["frame"].decode(),
        )
