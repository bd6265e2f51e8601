"""Readers of official state dicts that give shapes without loading data and load one tensor at a time.

A ``TensorSource`` is what the converter consumes: ``keys()``, ``shape(key)``, ``dtype(key)`` (a numpy dtype
name) and ``load(key) -> np.ndarray`` in float32 or wider (bf16/fp16 sources are upcast one tensor at a time).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Protocol

import numpy as np

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


class TensorSource(Protocol):
    def keys(self) -> Iterable[str]: ...

    def shape(self, key: str) -> tuple[int, ...]: ...

    def dtype(self, key: str) -> str: ...

    def load(self, key: str) -> np.ndarray: ...


def _as_float(a: np.ndarray) -> np.ndarray:
    # bf16 (ml_dtypes) and fp16 go to float32: every target dtype is float32, float64 or bfloat16, and the
    # cast to bfloat16 from float32 is exact for values that came from bfloat16.
    if a.dtype.name in ("bfloat16", "float16"):
        return a.astype(np.float32)
    return a


class NumpySource:
    """A dict of numpy arrays (or anything ``np.asarray`` takes)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self._arrays = arrays

    def keys(self):
        return list(self._arrays.keys())

    def shape(self, key):
        return tuple(np.shape(self._arrays[key]))

    def dtype(self, key):
        return (
            np.asarray(self._arrays[key]).dtype.name
            if not hasattr(self._arrays[key], "dtype")
            else str(self._arrays[key].dtype)
        )

    def load(self, key):
        return _as_float(np.asarray(self._arrays[key]))


class SafetensorsSource:
    """A ``.safetensors`` file, memory-mapped: no torch needed, one tensor resident at a time."""

    def __init__(self, path: str | os.PathLike):
        from safetensors import safe_open

        self.path = os.fspath(path)
        self._file = safe_open(self.path, framework="numpy")
        self._keys = list(self._file.keys())

    def keys(self):
        return self._keys

    def shape(self, key):
        return tuple(self._file.get_slice(key).get_shape())

    def dtype(self, key):
        st = self._file.get_slice(key).get_dtype()
        return {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}.get(st, st.lower())

    def load(self, key):
        return _as_float(self._file.get_tensor(key))


class TorchSource:
    """A ``.pt`` / ``.pth`` state dict written by ``torch.save`` (loaded with ``weights_only=True``, mmap'ed)."""

    def __init__(self, path: str | os.PathLike):
        try:
            import torch
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"reading {path} needs PyTorch: pip install 'vggt_jax[torch]' (or convert the checkpoint to "
                ".safetensors, which needs no torch)"
            ) from e
        self.path = os.fspath(path)
        obj = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
            obj = obj["model"]  # training checkpoints of the official trainer nest the state dict
        if not isinstance(obj, Mapping):
            raise ValueError(f"{path} does not hold a state dict (found {type(obj).__name__})")
        self._sd = obj

    def keys(self):
        return list(self._sd.keys())

    def shape(self, key):
        return tuple(self._sd[key].shape)

    def dtype(self, key):
        return str(self._sd[key].dtype).removeprefix("torch.")

    def load(self, key):
        import torch

        t = self._sd[key]
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()  # numpy has no bfloat16 for torch's .numpy()
        return t.detach().cpu().numpy()


def open_source(src) -> TensorSource:
    """A path (``.safetensors``, ``.pt``, ``.pth``, ``.bin``), a mapping of arrays, or a source already."""
    if isinstance(src, Mapping):
        return NumpySource(src)
    if hasattr(src, "load") and hasattr(src, "shape"):
        return src
    path = os.fspath(src)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        return SafetensorsSource(path)
    if path.endswith((".pt", ".pth", ".bin")):
        return TorchSource(path)
    raise ValueError(f"don't know how to read {path}: expected a .safetensors or .pt/.pth file")


def is_float_dtype(name: str) -> bool:
    return name in _FLOAT_DTYPES
