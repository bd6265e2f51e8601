"""Run our model on a golden fixture with the fixture's own weights and compare every output.

The weights are regenerated from the fixture's recipe table, written as an official-layout ``.safetensors``
file, and converted by the real converter, so a parity run also tests the conversion path end to end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vggt_jax.config import VGGTConfig, get_config
from vggt_jax.convert import convert_state_dict
from vggt_jax.parity.compare import DENSE, TRACK, check
from vggt_jax.parity.recipe import load_table, write_safetensors


def load_fixture(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fixture not found: {path}")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    if "meta_json" not in arrays or "images" not in arrays:
        raise ValueError(f"{path} is not a forward-case fixture (needs 'images' and 'meta_json')")
    return arrays, json.loads(str(arrays.pop("meta_json")))


def fixture_model_config(config_name: str, x64: bool) -> VGGTConfig:
    dtype = "float64" if x64 else "float32"
    return get_config(config_name).replace(dtype=dtype, head_dtype=dtype, param_dtype=dtype)


def fixture_params(table_path: Path, config: VGGTConfig, workdir: str | None = None, log: Callable = print):
    """Recipe weights -> official .safetensors (temporary) -> our params, in the config's param dtype."""
    table = load_table(table_path)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        st = os.path.join(tmp, "model.safetensors")
        t0 = time.perf_counter()
        write_safetensors(table, st)
        log(f"wrote {len(table['weights'])} recipe tensors to {st} in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        params = convert_state_dict(st, config, config.param_dtype)
        log(f"converted in {time.perf_counter() - t0:.1f} s")
    return params


def run_model(config: VGGTConfig, params: dict, images: np.ndarray, query_points: np.ndarray | None):
    """Jitted forward; returns (outputs, intermediates) as numpy, intermediates from ``sow``."""
    from vggt_jax.model.vggt import VGGT

    dtype = jnp.dtype(config.dtype)
    model = VGGT(config)
    fn = jax.jit(partial(model.apply, mutable=["intermediates"]))
    qp = None if query_points is None else jnp.asarray(query_points, dtype)
    out, state = fn(params, jnp.asarray(images, dtype), qp)
    inter = state["intermediates"]
    flat = {"patch_tokens": inter["aggregator"]["patch_tokens"][0]}
    flat.update({k: v[0] for k, v in inter.items() if k.startswith("aggregator_layer_")})
    return jax.tree_util.tree_map(np.asarray, out), jax.tree_util.tree_map(np.asarray, flat)


def ours_for(name: str, out: dict, inter: dict, layer_idx: np.ndarray) -> np.ndarray | None:
    """Our array for a golden name (without its ``__f64`` suffix), or None if the name is not an output."""
    if name in DENSE or name in TRACK:
        return out.get(name)
    m = re.fullmatch(r"dino_patchtokens_frame0(?:_first(\d+))?", name)
    if m:
        tokens = inter["patch_tokens"][0]
        return tokens[: int(m.group(1))] if m.group(1) else tokens
    m = re.fullmatch(r"agg_tokens(?:_(first|last)(\d+))?", name)
    if m:
        stacked = np.stack([inter[f"aggregator_layer_{int(i)}"] for i in layer_idx])
        if m.group(1) == "first":
            return stacked[:, :, :, : int(m.group(2))]
        if m.group(1) == "last":
            return stacked[:, :, :, -int(m.group(2)) :]
        return stacked
    return None


def run_parity(
    fixture: str | os.PathLike, config_name: str, x64: bool, workdir: str | None = None, log: Callable = print
) -> list[dict]:
    """Every golden ``__f64`` array of the fixture (``__f32`` if it has none) against our output."""
    arrays, meta = load_fixture(fixture)
    table_path = Path(fixture).parent / meta["weights_table"]
    suffix = "__f64" if meta.get("has_f64", True) else "__f32"
    ctx = jax.enable_x64(True) if x64 else contextlib.nullcontext()
    with ctx:
        config = fixture_model_config(config_name, x64)
        params = fixture_params(table_path, config, workdir, log)
        queries = arrays.get("query_points")
        in_dtype = np.float64 if x64 else np.float32
        t0 = time.perf_counter()
        out, inter = run_model(
            config, params, arrays["images"].astype(in_dtype), None if queries is None else queries.astype(in_dtype)
        )
        log(f"forward (with compile) in {time.perf_counter() - t0:.1f} s")
    del params
    records = []
    for key in sorted(k for k in arrays if k.endswith(suffix)):
        name = key[: -len(suffix)]
        ours = ours_for(name, out, inter, arrays.get("agg_layer_idx", np.array([])))
        if ours is None:
            records.append({"output": name, "pass": None, "note": "no such output of the model; not compared"})
            continue
        if name == "track_list":
            records.append(check("track_list[0]", ours[0], arrays[key][0], x64))
        records.append(check(name, ours, arrays[key], x64))
    return records
