"""Lowering the model for a platform this machine does not have (cuda, tpu) from abstract inputs.

``jax.jit(f).trace(...).lower(lowering_platforms=(platform,))`` and ``jax.export`` produce the program the device's
compiler gets, with shardings, collectives and custom calls, without the device. Two things need help:

- the attention kernel ``auto`` picks depends on the platform being traced for, not on this machine's backend:
  ``lowering_for`` traces under ``attention.platform_scope``;
- cuDNN's fused attention asks the installed cuDNN for its version while tracing (``jax._src.cudnn.
  fused_attention_stablehlo.check_cudnn_version``) and raises "cuDNN is not detected" on a machine without one.
  The version only gates features (none of which this model uses); where no cuDNN is installed ``lowering_for``
  answers ``ASSUMED_CUDNN_VERSION`` for the duration of the trace. The compute-capability probe needs no help: with
  no GPU it answers "not Hopper", which only lowers the head-dim limit to 128 (ours is 64).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import jax

from vggt_jax.model.attention import platform_scope

PLATFORMS = ("cpu", "cuda", "tpu")
# cuDNN 9.8, the oldest the CUDA 12 plugin of jax 0.10 installs (nvidia-cudnn-cu12 >= 9.8).
ASSUMED_CUDNN_VERSION = 90800


@contextlib.contextmanager
def _cudnn_version_for_tracing() -> Iterator[None]:
    try:
        from jax._src.cudnn import fused_attention_stablehlo as fused
    except ImportError:  # moved in another jax: a machine with a GPU needs no help, one without fails naming it
        yield
        return
    try:
        fused.check_cudnn_version()
        installed = True
    except RuntimeError:
        installed = False
    if installed:  # a real cuDNN answers for itself
        yield
        return
    probe = fused.check_cudnn_version
    fused.check_cudnn_version = lambda: ASSUMED_CUDNN_VERSION
    try:
        yield
    finally:
        fused.check_cudnn_version = probe


@contextlib.contextmanager
def lowering_for(platform: str) -> Iterator[None]:
    """Trace the enclosed model code for ``platform`` ("cpu", "cuda", "tpu"), on any machine."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; choose from {PLATFORMS}")
    with platform_scope(platform):
        if platform == "cuda":
            with _cudnn_version_for_tracing():
                yield
        else:
            yield


def trace_and_lower(fn: Callable, args: tuple, platform: str, **jit_kwargs: Any):
    """``(traced, lowered)`` of ``jax.jit(fn)`` (or ``fn`` if already jitted) on ``args`` for ``platform``."""
    jitted = fn if hasattr(fn, "trace") else jax.jit(fn, **jit_kwargs)
    with lowering_for(platform):
        traced = jitted.trace(*args)
        lowered = traced.lower(lowering_platforms=(platform,))
    return traced, lowered
