"""configs/finetune.py end to end as a CPU dry run: the demo checkpoint fine-tuned on scenes in the generic folder
layout with the paper's augmentations, through train.py, checkpointed, then resumed; the aggregator stays frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import CACHE_DIR, REPO, load_file_module

from vggt_jax.convert.checkpoint import load_checkpoint
from vggt_jax.data import config as data_config
from vggt_jax.data.readers.folder import write_folder_scene
from vggt_jax.data.synthetic import SyntheticScene
from vggt_jax.model.layout import unstack_layers
from vggt_jax.train import loop
from vggt_jax.train.sharding import make_mesh

DEMO = REPO / "examples" / "demo_micro"


def _train(workdir, data, steps: int) -> str:
    arg = f"init_from={DEMO},model=micro,size=28,frames=2,steps={steps},data={data}"
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
        JAX_PLATFORMS="cpu",
    )
    flags = [f"--config={REPO / 'configs' / 'finetune.py'}:{arg}", "--config.async_checkpoint=False"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), f"--workdir={workdir}", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def test_recipe_fine_tunes_a_checkpoint_on_folder_scenes_and_resumes(tmp_path):
    data = tmp_path / "captures"
    for seed in range(2):
        v = SyntheticScene(seed=seed, num_frames=4, height=36, width=48, trajectory="turn").render()
        images = np.round(v["images"] * 255).astype(np.uint8)
        write_folder_scene(data / f"scene{seed}", images, v["extrinsics"], v["intrinsics"], v["depths"])
    workdir = tmp_path / "run"
    _train(workdir, f"folder:{data}", steps=2)
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
    _train(workdir, f"folder:{data}", steps=4)  # resumes from step 2
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train_steps = [r["step"] for r in rows if "train/loss/objective" in r]
    assert train_steps == [1, 2, 3, 4], train_steps
    assert all(np.isfinite(r["train/loss/objective"]) for r in rows if "train/loss/objective" in r)

    with ocp.StandardCheckpointer() as ckptr:
        state = jax.device_get(ckptr.restore(workdir / "checkpoints" / "4" / "state"))
    _, demo = load_checkpoint(DEMO)
    tuned, tuned_params = load_checkpoint(workdir / "model")
    assert tuned.point_head is None and tuned.track_head is None  # camera + depth, as the official recipe
    assert tuned.aggregator.scan_layers  # the recipe's layout; the demo checkpoint is unrolled
    flat_demo = dict(jax.tree_util.tree_leaves_with_path(demo["params"]))
    changed = 0
    for path, value in jax.tree_util.tree_leaves_with_path(unstack_layers(tuned_params["params"], tuned)):
        before = np.asarray(flat_demo[path])
        if jax.tree_util.keystr(path).startswith("['aggregator']"):
            np.testing.assert_array_equal(np.asarray(value), before, err_msg=jax.tree_util.keystr(path))
        else:
            changed += not np.array_equal(np.asarray(value), before)
    assert changed > 10 and int(state["step"]) == 4


def test_recipe_arguments_are_checked():
    finetune = load_file_module("configs/finetune.py")
    c = finetune.get_config("data=scannet:/d/scannet:2+megadepth:/d/mega:1")
    assert sorted(c.data.mix) == ["0_scannet", "1_megadepth"]
    assert c.data.mix["0_scannet"].weight == 2.0 and c.data.mix["1_megadepth"].path == "/d/mega"
    assert c.optim.frozen == ("^aggregator/",) and c.data.augs.distortion_p > 0 and c.data.augs.pp_shift == 0
    # Held-out evaluation of a mix: every source gets the evaluation's frame count and aspect ratio.
    held_out = loop.data_config(c, make_mesh(devices=jax.devices()[:1]), eval_mode=True)
    assert {tuple(e.num_frames) for e in held_out.mix.values()} == {tuple(c.eval.data.num_frames)}
    assert {(b[1], b[2]) for b in data_config.batch_shapes(held_out)} == {(4, c.data.img_size)}
    c = finetune.get_config("data=folder:/d/own")
    assert not c.data.mix and c.data.source.kind == "folder" and c.data.source.path == "/d/own"
    for spec, message in (("colmp:/d", "unknown kind 'colmp'"), ("folder", "kind:path")):
        with pytest.raises(ValueError, match=message):
            finetune.get_config(f"data={spec}")
