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
from vggt_jax.model.rope import axial_rope_tables
from vggt_jax.parity.compare import DENSE, TRACK, check
from vggt_jax.parity.recipe import load_table, write_safetensors

# VGGT-Omega's intermediates: fixture name -> (our module path in the "intermediates" collection, NCHW layout).
OMEGA_INTERMEDIATES = {
    "camera_trunk_in": (("camera_head", "trunk_in"), False),
    "camera_trunk_out": (("camera_head", "trunk_out"), False),
    "camera_branch_in": (("camera_head", "branch_in"), False),
    "pose_enc_raw": (("camera_head", "pose_enc_raw"), False),
    "text_readout_in": (("text_alignment_head", "readout_in"), False),
    "text_readout_out": (("text_alignment_head", "readout_out"), False),
    "text_embedding_unnormalised": (("text_alignment_head", "embedding_unnormalised"), False),
    **{f"dense_feat{j}": (("depth_head", f"feat{j}"), True) for j in range(4)},
    "dense_fused": (("depth_head", "fused"), True),
    "dense_proj_out": (("depth_head", "proj_out"), True),
    "dense_proj_conf_out": (("depth_head", "proj_conf_out"), True),
}
OMEGA_OUTPUTS = ("camera_and_register_tokens", "text_alignment_embedding", "text_alignment_token")


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
    """The variant in float64 or float32 throughout, its dense heads on all frames at once (so their
    intermediates can be collected; chunking frames changes no number)."""
    dtype = "float64" if x64 else "float32"
    return get_config(config_name).replace(dtype=dtype, head_dtype=dtype, param_dtype=dtype, heads_frames_chunk=0)


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
    for name, (path, nchw) in OMEGA_INTERMEDIATES.items():
        node = inter
        for key in path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if node:
            flat[name] = jnp.transpose(node[0], (0, 3, 1, 2)) if nchw else node[0]
    return jax.tree_util.tree_map(np.asarray, out), jax.tree_util.tree_map(np.asarray, flat)


def rope_table(name: str, config: VGGTConfig, image_hw: tuple[int, int], x64: bool) -> np.ndarray:
    """Our RoPE table named by an Omega fixture (``dino_rope_sin`` ...), as the model builds it."""
    which, fn = name.split("_rope_")
    agg = config.aggregator
    grid = (image_hw[0] // config.patch_size, image_hw[1] // config.patch_size)
    if which == "dino":
        dino = agg.patch_embed
        head_dim, base, dtype = dino.embed_dim // dino.num_heads, dino.rope_base, np.float64 if x64 else np.float32
    else:  # the aggregator's table is float32 in every run
        head_dim, base, dtype = agg.embed_dim // agg.num_heads, agg.rope_freq, np.float32
    cos, sin = axial_rope_tables(*grid, head_dim, base, np.float64 if x64 else np.float32)
    return (cos if fn == "cos" else sin).astype(dtype)


def ours_for(name: str, out: dict, inter: dict, layer_idx: np.ndarray) -> np.ndarray | None:
    """Our array for a golden name (without its ``__f64`` suffix), or None if the name is not an output."""
    if name in DENSE or name in TRACK or name in OMEGA_OUTPUTS:
        return out.get(name)
    if name in inter:
        return inter[name]
    m = re.fullmatch(r"dino_patchtokens_frame0(?:_(first|last)(\d+))?", name)
    if m:
        tokens = inter["patch_tokens"][0]
        if m.group(1) == "first":
            return tokens[: int(m.group(2))]
        return tokens[-int(m.group(2)) :] if m.group(1) == "last" else tokens
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
        if "_rope_" in name:
            ours = rope_table(name, config, arrays["images"].shape[-2:], x64)
        else:
            ours = ours_for(name, out, inter, arrays.get("agg_layer_idx", np.array([])))
        if ours is None:
            records.append({"output": name, "pass": None, "note": "no such output of the model; not compared"})
            continue
        if name == "track_list":
            records.append(check("track_list[0]", ours[0], arrays[key][0], x64))
        records.append(check(name, ours, arrays[key], x64))
    return records
