"""The conversion CLI and orbax checkpoints: file, Hub cache (offline) and the errors a user can cause."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from vggt_jax import load_checkpoint
from vggt_jax.convert import convert_state_dict
from vggt_jax.convert.__main__ import main
from vggt_jax.parity.recipe import load_table, write_safetensors


@pytest.fixture(scope="module")
def tiny_safetensors(tmp_path_factory, fixture_file):
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    write_safetensors(load_table(fixture_file("tiny_weights.json")), path)
    return path


def assert_same_tree(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_convert_cli_round_trip(tmp_path, tiny_safetensors, capsys):
    assert main([str(tiny_safetensors), "--out", str(tmp_path / "ckpt"), "--config", "tiny"]) == 0
    config, params = load_checkpoint(tmp_path / "ckpt")
    assert config.name == "tiny"
    assert_same_tree(params, convert_state_dict(tiny_safetensors, config))
    assert "48,989,164 parameters" in capsys.readouterr().out


def test_convert_cli_bfloat16(tmp_path, tiny_safetensors):
    assert (
        main([str(tiny_safetensors), "--out", str(tmp_path / "bf16"), "--config", "tiny", "--dtype", "bfloat16"]) == 0
    )
    config, params = load_checkpoint(tmp_path / "bf16")
    assert config.param_dtype == "bfloat16"
    assert {x.dtype for x in jax.tree_util.tree_leaves(params)} == {jax.numpy.dtype("bfloat16")}
    _, as_f32 = load_checkpoint(tmp_path / "bf16", dtype="float32")
    assert {x.dtype for x in jax.tree_util.tree_leaves(as_f32)} == {jax.numpy.dtype("float32")}


def _hub_cache(root, repo_id: str, filename: str, target) -> None:
    """huggingface_hub's cache layout for one file of one revision, the file a symlink as the Hub writes it."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "snapshots" / revision / filename).symlink_to(target)


def test_convert_from_hub_cache_offline(tmp_path, tiny_safetensors, monkeypatch):
    """--hub resolves through huggingface_hub's cache layout; offline mode, so no network is touched."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    _hub_cache(tmp_path / "hub", "facebook/VGGT-1B", "model.safetensors", tiny_safetensors)
    out = tmp_path / "from_hub"
    assert (
        main(["--hub", "facebook/VGGT-1B", "--cache-dir", str(tmp_path / "hub"), "--out", str(out), "--config", "tiny"])
        == 0
    )
    assert load_checkpoint(out)[0].name == "tiny"


def test_convert_omega_from_hub_cache_offline(tmp_path, fixture_file, monkeypatch, capsys):
    """``--hub facebook/VGGT-Omega`` finds the 512-px .pt file (Omega ships no safetensors) in the cache, offline,
    and without --config tells the family from the keys: here a tiny Omega state dict with the text head, which
    the key rule reads as the 1B text model, so --config omega_tiny gives the shapes."""
    import huggingface_hub.constants
    import torch

    from vggt_jax.parity.recipe import state_dict

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    sd = state_dict(load_table(fixture_file("omega/omega_tiny_weights.json")))
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, tmp_path / "omega.pt")
    _hub_cache(tmp_path / "hub", "facebook/VGGT-Omega", "vggt_omega_1b_512.pt", tmp_path / "omega.pt")
    argv = ["--hub", "facebook/VGGT-Omega", "--cache-dir", str(tmp_path / "hub"), "--out", str(tmp_path / "ckpt")]
    assert main([*argv, "--config", "omega_tiny"]) == 0
    config, _ = load_checkpoint(tmp_path / "ckpt")
    assert config.name == "omega_tiny" and config.family == "vggt_omega"
    # Detected (no --config): the 1B text model's shapes do not fit the tiny tensors, and the error says so.
    assert main([*argv[:-1], str(tmp_path / "detected")]) == 1
    assert "does not match the model config" in capsys.readouterr().err
    assert not (tmp_path / "detected").exists()


def test_convert_cli_errors_leave_nothing(tmp_path, tiny_safetensors, capsys):
    out = tmp_path / "wrong"
    # A tiny checkpoint converted as the 1B model: one error listing the mismatches, and no output folder.
    assert main([str(tiny_safetensors), "--out", str(out), "--config", "vggt_1b"]) == 1
    err = capsys.readouterr().err
    assert "does not match the model config" in err and "wrong shape" in err
    assert not out.exists() and not (tmp_path / "wrong.partial").exists()
    assert main([str(tmp_path / "missing.safetensors"), "--out", str(out), "--config", "tiny"]) == 1
    assert "not found" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert main([str(tiny_safetensors), "--out", str(tmp_path / "full"), "--config", "tiny"]) == 1
    assert "not empty" in capsys.readouterr().err and (tmp_path / "full" / "x").read_text() == "keep me"


def test_load_checkpoint_error_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m vggt_jax.convert"):
        load_checkpoint(tmp_path)
