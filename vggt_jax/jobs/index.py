"""The dataset-level index of a batch job: one JSON row per scene, what a training pipeline reads.

    OUT/index/journal-<p>.jsonl           process p's rows as its scenes finish (an append-only log)
    OUT/index/part-<p>-of-<n>.jsonl       process p's rows in manifest order, written when it finishes

A row: ``id``, ``order`` (the scene's place in the manifest), ``status`` ("done" or "failed"), ``error``,
``images`` (the source), ``frames`` (names), ``frame_indices`` (into the source's images), ``image_hw`` (model
input), ``original_hw``, ``intrinsics`` (3x3 per frame, original pixels), ``extrinsics`` (3x4 camera-from-world
per frame, OpenCV, frame 0 = identity), ``outputs`` (name -> path relative to OUT) and ``depth_conf`` statistics.
No timing is recorded in a row, so a resumed job's index equals an uninterrupted one's byte for byte.

A row is appended with one ``write`` and flushed; a process killed mid-write leaves at most a partial last line,
which the reader ignores and the next run truncates. A scene is finished when its row is in the index and (for
"done") its folder is in place; the folder is renamed into place before the row is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

INDEX = "index"


def journal_path(out: Path, process: int) -> Path:
    return Path(out) / INDEX / f"journal-{process:05d}.jsonl"


def part_path(out: Path, process: int, count: int) -> Path:
    return Path(out) / INDEX / f"part-{process:05d}-of-{count:05d}.jsonl"


def _rows(path: Path) -> list[dict]:
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a partial last line of a killed process
    return rows


def read_index(out: str | os.PathLike) -> list[dict]:
    """Every scene's row (parts and journals of every process; the latest row of a scene wins), in manifest
    order."""
    folder = Path(out) / INDEX
    if not folder.is_dir():
        raise FileNotFoundError(f"{out} has no {INDEX}/ folder: not the output of python -m vggt_jax.batch")
    by_id: dict[str, dict] = {}
    for path in sorted(folder.glob("part-*.jsonl")) + sorted(folder.glob("journal-*.jsonl")):
        for row in _rows(path):
            by_id[row["id"]] = row
    return sorted(by_id.values(), key=lambda r: r["order"])


class IndexWriter:
    """One process's journal (appends, flushed per row) and its final part."""

    def __init__(self, out: Path, process: int, count: int):
        self.out, self.process, self.count = Path(out), process, count
        self.journal = journal_path(out, process)
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        _truncate_partial_line(self.journal)
        self._file = open(self.journal, "a")  # noqa: SIM115 - held open for the job, closed by close()

    def append(self, row: dict) -> None:
        self._file.write(json.dumps(row, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def finish(self, rows: Iterable[dict]) -> Path:
        """Write the part (``rows`` in manifest order) atomically."""
        path = part_path(self.out, self.process, self.count)
        tmp = path.with_name(path.name + ".tmp")
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in sorted(rows, key=lambda r: r["order"]))
        tmp.write_text(text)
        os.replace(tmp, path)
        return path


def _truncate_partial_line(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def finished_rows(out: Path) -> dict[str, dict]:
    """Scenes finished by earlier runs (any process, any process count): their rows, where a "done" row needs its
    folder in place."""
    if not (Path(out) / INDEX).is_dir():
        return {}
    rows = {r["id"]: r for r in read_index(out)}
    return {k: r for k, r in rows.items() if r["status"] != "done" or (Path(out) / "scenes" / k).is_dir()}
