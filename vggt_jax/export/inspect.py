"""What a lowered program will give its platform: custom calls, collectives, float32 matmuls of a bf16 model.

Read from the program JAX hands the device's compiler (StableHLO text) and from the traced jaxpr (the module path
of each operation), so they are checked on a machine without the device (``vggt_jax.export.matrix``).
"""

from __future__ import annotations

import collections
import re

from jax.extend import core as jcore

from vggt_jax.model.precision import float32_allowed

# Custom-call targets by what they are: the fused attention kernels a platform is meant to get.
CUDNN_ATTENTION = re.compile(r"__cudnn\$fmha\w*")
MOSAIC = "tpu_custom_call"  # Pallas kernels on TPU (splash attention) lower to one Mosaic custom call each
COLLECTIVES = ("all_gather", "all_reduce", "reduce_scatter", "collective_permute", "all_to_all")


def custom_calls(text: str) -> collections.Counter:
    """Custom-call targets in a StableHLO module, with counts."""
    return collections.Counter(re.findall(r"stablehlo\.custom_call @([\w$.]+)", text))


def collectives(text: str) -> collections.Counter:
    """Collective operations written into a StableHLO module (those of ``shard_map`` code; the SPMD partitioner
    adds the rest when the device compiles it)."""
    return collections.Counter(m for m in re.findall(r"stablehlo\.(\w+)", text) if m in COLLECTIVES)


def fused_attention(calls: collections.Counter) -> set[str]:
    """The fused attention kernels among a module's custom calls: {"cudnn", "splash"}."""
    found = {"cudnn"} if any(CUDNN_ATTENTION.fullmatch(name) for name in calls) else set()
    return found | ({"splash"} if calls[MOSAIC] else set())


def ops_with_operand(jaxpr: jcore.Jaxpr, dtype: str) -> collections.Counter:
    """Every matmul (``dot_general``) and convolution with a ``dtype`` operand in ``jaxpr``, sub-jaxprs (scans,
    loops, remat, shard_map) included, by module path (digits of layer indices as ``#``)."""
    found: collections.Counter = collections.Counter()

    def walk(j: jcore.Jaxpr, prefix: str) -> None:
        for eqn in j.eqns:
            path = f"{prefix}/{eqn.source_info.name_stack}"
            if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
                if any(str(getattr(v.aval, "dtype", "")) == dtype for v in eqn.invars):
                    found[re.sub(r"\d+", "#", path)] += 1
            for value in eqn.params.values():
                for sub in value if isinstance(value, (list, tuple)) else (value,):
                    if isinstance(sub, jcore.ClosedJaxpr):
                        walk(sub.jaxpr, path)
                    elif isinstance(sub, jcore.Jaxpr):
                        walk(sub, path)

    walk(jaxpr, "")
    return found


def float32_ops_outside_policy(jaxpr: jcore.Jaxpr) -> dict[str, int]:
    """The float32 matmuls and convolutions of a bfloat16 program that ``vggt_jax.model.precision`` does not name."""
    return {path: n for path, n in ops_with_operand(jaxpr, "float32").items() if not float32_allowed(path)}
