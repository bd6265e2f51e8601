"""The lowering matrix: VGGT-1B and VGGT-Omega-1B lowered for cuda and tpu from abstract parameters, and checked.

    python -m vggt_jax.export.matrix                  # every case, a table, exit 1 on a failed check
    python -m vggt_jax.export.matrix --configs vggt_1b --kinds forward

Cases (``cases``): the inference forward with every attention backend of a platform (cuda: cudnn, xla, chunked;
tpu: splash, xla, chunked) and ``auto``, in bfloat16 and float32; the frame-sharded forward on an 8-device mesh
(gather and ring); the training step of ``configs/train_vggt_1b.py`` on a (data 2, fsdp 4, tensor 2) mesh of 16
devices. Nothing is materialised: parameters are ``jax.eval_shape`` structs, meshes are ``AbstractMesh``es, and
the small images (2 frames of 4x5 patches) keep each lowering to seconds; the checks do not depend on the size.

Each case checks what the platform will get (``check``): the fused kernel's custom call where one is asked for or
``auto`` should pick it (cuDNN's ``__cudnn$fmha*`` on cuda, splash's Mosaic ``tpu_custom_call`` on tpu) and none
elsewhere; in a bfloat16 program no float32 matmul or convolution outside ``vggt_jax.model.precision``; in a
float32 program no bfloat16 one; the collectives frame sharding writes (all-gather of keys and values, or the
ring's collective-permute); for the train step, parameters and optimiser state sharded over fsdp in the module's
signature (so the device's partitioner reduce-scatters the gradients; that collective is inserted when the device
compiles, after this point) and the batch over (data, fsdp).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import importlib.util
import math
import os
import re
import sys
import time
from pathlib import Path

if __name__ == "__main__" and "jax" not in sys.modules:  # the train step's 16-device mesh (train_mesh)
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=16".strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import AbstractMesh, AxisType

from vggt_jax.config import get_config
from vggt_jax.export import inspect
from vggt_jax.export.lowering import trace_and_lower
from vggt_jax.model.attention import record_kernels
from vggt_jax.model.vggt import VGGT

BACKENDS = {"cuda": ("cudnn", "xla", "chunked"), "tpu": ("splash", "xla", "chunked")}
FUSED = {"cuda": "cudnn", "tpu": "splash"}
DTYPES = ("bfloat16", "float32")
CONFIGS = ("vggt_1b", "vggt_omega_1b")
KINDS = ("forward", "sharded", "train")
TRAIN_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "train_vggt_1b.py"
SHARDED_DEVICES = 8
TRAIN_MESH = (2, 4, 2)


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str  # "forward", "sharded" or "train"
    config: str
    platform: str
    attention: str = "auto"
    dtype: str = "bfloat16"
    exchange: str | None = None  # sharded: "gather" or "ring"

    @property
    def name(self) -> str:
        extra = f" {self.exchange}" if self.exchange else ""
        return f"{self.kind} {self.config} {self.platform} {self.attention} {self.dtype}{extra}"


@dataclasses.dataclass
class Result:
    case: Case
    kernels: collections.Counter  # attention kernels traced (what auto chose)
    custom_calls: collections.Counter
    collectives: collections.Counter
    float32_outside: dict[str, int]  # bf16 program: float32 matmuls/convs the policy does not name
    bfloat16_ops: int  # f32 program: matmuls/convs with a bf16 operand
    seconds: float
    signature: str  # the main function's signature (with its shardings)
    lowered: object = dataclasses.field(default=None, repr=False)  # jax.stages.Lowered, for a device to compile
    problems: list[str] = dataclasses.field(default_factory=list)


def cases(configs=CONFIGS, kinds=KINDS) -> list[Case]:
    out = []
    for config in configs:
        for platform, backends in BACKENDS.items():
            if "forward" in kinds:
                out += [Case("forward", config, platform, a, d) for d in DTYPES for a in (*backends, "auto")]
            if "sharded" in kinds:
                out += [Case("sharded", config, platform, exchange=x) for x in ("gather", "ring")]
    if "train" in kinds:
        out += [Case("train", "vggt_1b", p) for p in BACKENDS]
    return out


def image_shape(config) -> tuple[int, int]:
    p = config.patch_size
    return 4 * p, 5 * p


def _model(case: Case) -> VGGT:
    return VGGT(get_config(case.config).replace(dtype=case.dtype, attention=case.attention))


@functools.lru_cache(maxsize=8)
def abstract_params(config: str, dtype: str):
    """The parameter structs of a config (the attention kernel does not change them: traced with the reference)."""
    model = VGGT(get_config(config).replace(dtype=dtype, attention="xla"))
    # Big enough for the tracker's four-level pyramid, which init runs.
    images = jax.ShapeDtypeStruct((1, 1, 3, *(4 * n for n in image_shape(model.config))), jnp.dtype(dtype))
    return jax.eval_shape(model.init, jax.random.key(0), images)


def _forward_inputs(case: Case, frames: int):
    config = get_config(case.config)
    images = jax.ShapeDtypeStruct((1, frames, 3, *image_shape(config)), jnp.dtype(case.dtype))
    return abstract_params(case.config, case.dtype), images, jax.ShapeDtypeStruct((1, frames), jnp.bool_)


def _result(case, traced, lowered, kernels, seconds) -> Result:
    text = lowered.as_text()
    jaxpr = traced.jaxpr.jaxpr
    return Result(
        case,
        collections.Counter(kernels),
        inspect.custom_calls(text),
        inspect.collectives(text),
        inspect.float32_ops_outside_policy(jaxpr) if case.dtype == "bfloat16" else {},
        sum(inspect.ops_with_operand(jaxpr, "bfloat16").values()) if case.dtype == "float32" else 0,
        seconds,
        next((line for line in text.splitlines() if "func.func public @main" in line), ""),
        lowered,
    )


def lower_forward(case: Case, frames: int = 2) -> Result:
    model = _model(case)
    params, images, mask = _forward_inputs(case, frames)
    t = time.perf_counter()
    with record_kernels() as kernels:
        traced, lowered = trace_and_lower(
            lambda p, i, m: model.apply(p, i, None, m), (params, images, mask), case.platform
        )
    return _result(case, traced, lowered, kernels, time.perf_counter() - t)


def lower_sharded(case: Case, frames: int = SHARDED_DEVICES) -> Result:
    from vggt_jax.inference.sharded import FRAME_AXIS, frame_sharded_apply

    model = _model(case)
    params, images, mask = _forward_inputs(case, frames)
    mesh = AbstractMesh((SHARDED_DEVICES,), (FRAME_AXIS,), axis_types=(AxisType.Auto,))
    forward = frame_sharded_apply(model, mesh, FRAME_AXIS, case.exchange)
    t = time.perf_counter()
    with record_kernels() as kernels:
        traced, lowered = trace_and_lower(forward, (params, images, None, mask), case.platform)
    return _result(case, traced, lowered, kernels, time.perf_counter() - t)


def train_config():
    spec = importlib.util.spec_from_file_location("train_vggt_1b", TRAIN_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(None)


def train_mesh():
    """The train step's (data, fsdp, tensor) mesh over this machine's (virtual) devices; their platform does not
    matter for lowering. Not an ``AbstractMesh``: cuDNN's attention primitives need concrete devices to lower
    under a multi-device mesh (jax marks them ``prim_requires_devices_during_lowering``)."""
    from vggt_jax.train import sharding as sh

    size = math.prod(TRAIN_MESH)
    if jax.device_count() < size:
        raise RuntimeError(
            f"the train step lowers on {size} devices and this process has {jax.device_count()}: run "
            f"`python -m vggt_jax.export.matrix` (it asks for {size} virtual CPU devices) or set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={size} before jax is imported"
        )
    return jax.make_mesh(TRAIN_MESH, sh.MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=jax.devices()[:size])


def lower_train(case: Case, frames: int = 2) -> Result:
    from vggt_jax.train import sharding as sh
    from vggt_jax.train.trainer import Trainer

    config = train_config()
    mesh = train_mesh()
    trainer = Trainer.create(config, mesh)
    h, w = image_shape(trainer.model.config)
    b = sh.data_parallel_size(mesh)
    shapes = {
        "images": ((b, frames, h, w, 3), jnp.float32),
        "extrinsics": ((b, frames, 3, 4), jnp.float32),
        "intrinsics": ((b, frames, 3, 3), jnp.float32),
        "depths": ((b, frames, h, w), jnp.float32),
        "world_points": ((b, frames, h, w, 3), jnp.float32),
        "point_masks": ((b, frames, h, w), jnp.bool_),
        "frame_mask": ((b, frames), jnp.bool_),
    }
    batch = {k: jax.ShapeDtypeStruct(s, d, sharding=sh.batch_sharding(mesh, len(s))) for k, (s, d) in shapes.items()}
    step = trainer.train_step_jit(batch)
    t = time.perf_counter()
    # Traced as the train loop traces it: under the mesh and the logical-axis rules.
    with record_kernels() as kernels, jax.set_mesh(mesh), sh.logical_axis_rules():
        traced, lowered = trace_and_lower(step, (trainer.abstract_state, batch), case.platform)
    return _result(
        dataclasses.replace(case, dtype=trainer.model.config.dtype), traced, lowered, kernels, time.perf_counter() - t
    )


LOWER = {"forward": lower_forward, "sharded": lower_sharded, "train": lower_train}


def expected_kernel(case: Case) -> str | None:
    """The fused kernel this case must contain (None: it must contain none)."""
    fused = FUSED[case.platform]
    wants = case.attention if case.attention != "auto" else fused
    # Frame-sharded with the ring, global attention merges partial softmaxes with the tiled kernel; frame attention
    # (and the camera head's trunk) still runs the fused one.
    if wants == "cudnn" and case.dtype != "bfloat16":
        return None  # cuDNN takes bf16/fp16 only; a float32 model runs the plain kernels
    return wants if wants == fused else None


def check(result: Result) -> list[str]:
    """What the case's platform must get; each problem as one line."""
    case, problems = result.case, []
    kernel = expected_kernel(case)
    module_kernels = inspect.fused_attention(result.custom_calls)
    if kernel is not None and kernel not in module_kernels:
        problems.append(
            f"no {kernel} custom call in the {case.platform} module (kernels traced: {dict(result.kernels)})"
        )
    for extra in module_kernels - {kernel}:
        problems.append(f"unexpected {extra} custom call in the {case.platform} module")
    if result.float32_outside:
        worst = sorted(result.float32_outside.items())[:3]
        problems.append(f"float32 matmuls/convolutions outside the precision policy: {worst}")
    if result.bfloat16_ops:
        problems.append(f"{result.bfloat16_ops} bfloat16 matmuls/convolutions in a float32 program")
    if case.kind == "sharded":
        wants = "all_gather" if case.exchange == "gather" else "collective_permute"
        if not result.collectives[wants]:
            problems.append(f"no {wants} in the frame-sharded module (collectives: {dict(result.collectives)})")
        if case.exchange == "ring" and not result.kernels["ring"]:
            problems.append("global attention did not run the ring")
    if case.kind == "train":
        problems += _train_sharding_problems(result.signature)
    return problems


_ARG = re.compile(r"%arg\d+: tensor<([\dx]*)x?(\w+)>(?: \{((?:[^{}]|\{[^{}]*\})*)\})?")


def _train_sharding_problems(signature: str) -> list[str]:
    """The parameters and optimiser state (the large arguments) sharded over fsdp, the batch over data."""
    unsharded, total = 0, 0
    for dims, _, attrs in _ARG.findall(signature):
        size = 1
        for d in filter(None, dims.split("x")):
            size *= int(d)
        if size < 1 << 16:
            continue
        total += size
        if '"fsdp"' not in (attrs or ""):
            unsharded += size
    if not total:
        return ["no parameter found in the train step's signature"]
    if unsharded / total > 0.02:
        return [f"{unsharded / total:.1%} of the train state's elements are not sharded over fsdp"]
    return []


def run(selected: list[Case], verbose: bool = True) -> list[Result]:
    results = []
    for case in selected:
        result = LOWER[case.kind](case)
        result.problems = check(result)
        results.append(result)
        if verbose:
            status = "ok" if not result.problems else "FAIL: " + "; ".join(result.problems)
            print(f"{case.name:<48} {result.seconds:5.1f} s  {status}", file=sys.stderr, flush=True)
    return results


def table(results: list[Result]) -> str:
    rows = ["| case | kernels traced | custom calls | collectives | s | check |", "|---|---|---|---|---|---|"]
    for r in results:
        kernels = ", ".join(f"{k} x{n}" for k, n in sorted(r.kernels.items()))
        calls = ", ".join(f"{k} x{n}" for k, n in sorted(r.custom_calls.items())) or "-"
        coll = ", ".join(f"{k} x{n}" for k, n in sorted(r.collectives.items())) or "-"
        status = "ok" if not r.problems else "FAIL"
        rows.append(f"| {r.case.name} | {kernels} | {calls} | {coll} | {r.seconds:.1f} | {status} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--kinds", default=",".join(KINDS))
    args = ap.parse_args(argv)
    results = run(cases(args.configs.split(","), args.kinds.split(",")))
    print(f"jax {jax.__version__}, lowered on {jax.default_backend()}")
    print(table(results))
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
