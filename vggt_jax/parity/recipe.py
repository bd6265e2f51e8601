"""The fixtures' deterministic weights: every tensor generated from its state-dict key (shared/fixtures/README.md).

The (mean, std) per key come from the fixture's weights table, so no rule is re-derived here.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator

import numpy as np


def fixture_weight(key: str, shape, mean: float, std: float) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    # numpy >= 2 (NEP 50) casts the Python floats to float32 first, as the recipe prescribes.
    return (mean + std * rng.standard_normal(size=tuple(shape), dtype=np.float32)).astype(np.float32)


def load_table(path: str | os.PathLike) -> dict:
    with open(path) as f:
        table = json.load(f)
    if "weights" not in table:
        raise ValueError(f"{path} is not a fixture weights table (no 'weights' list)")
    return table


def fixture_buffer(row: dict) -> np.ndarray:
    """A VGGT-Omega persistent buffer of a weights table (rule ``buffer:*``, shared/fixtures/omega/README.md): the
    k-bias mask is regenerated, the RoPE periods are the row's listed float32 values."""
    if row["rule"] == "buffer:bias_mask":
        third = row["shape"][0] // 3
        return np.concatenate([np.ones(third), np.zeros(third), np.ones(third)]).astype(np.float32)
    if row["rule"] == "buffer:periods":
        return np.asarray(row["values"], np.float32)
    raise ValueError(f"unknown buffer rule {row['rule']!r} for {row['key']}")


def iter_weights(table: dict) -> Iterator[tuple[str, np.ndarray]]:
    for w in table["weights"]:
        if w.get("rule", "").startswith("buffer:"):
            yield w["key"], fixture_buffer(w)
        else:
            yield w["key"], fixture_weight(w["key"], w["shape"], w["mean"], w["std"])


def state_dict(table: dict) -> dict[str, np.ndarray]:
    return dict(iter_weights(table))


def write_safetensors(table: dict, path: str | os.PathLike) -> None:
    """Write the fixture weights as an official-layout ``.safetensors`` file, one tensor at a time.

    ``safetensors.numpy.save_file`` needs every tensor in memory at once (5 GB for the 1B model); the format is a
    little-endian u64 header size, a JSON header of dtype/shape/offsets, then the raw bytes, so it is streamed
    here instead. The result is read back with the ``safetensors`` library like any official file.
    """
    header, offset = {}, 0
    for w in table["weights"]:
        nbytes = 4 * int(np.prod(w["shape"], dtype=np.int64))
        header[w["key"]] = {"dtype": "F32", "shape": list(w["shape"]), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the spec pads the header with spaces to an 8-byte boundary
    tmp = os.fspath(path) + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, array in iter_weights(table):
            f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())
    os.replace(tmp, path)
