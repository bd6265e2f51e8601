"""The converter: rename table coverage on the 1B manifest, strict errors, .pt == .safetensors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from vggt_jax.config import tiny, vggt_1b
from vggt_jax.convert import ConversionError, abstract_params, convert_state_dict, count_params
from vggt_jax.convert.convert import plan_conversion
from vggt_jax.model.layout import with_scan_layers
from vggt_jax.parity.recipe import load_table, state_dict


class ShapeOnlySource:
    """The weights table as a source: shapes without data (the 1B manifest needs no 5 GB of weights)."""

    def __init__(self, table):
        self._w = {w["key"]: tuple(w["shape"]) for w in table["weights"]}

    def keys(self):
        return list(self._w)

    def shape(self, key):
        return self._w[key]

    def dtype(self, key):
        return "float32"

    def load(self, key):
        raise AssertionError("a plan must not load data")


def test_1b_manifest_maps_every_key(fixture_file):
    table = load_table(fixture_file("vggt1b_weights.json"))
    assert table["num_keys"] == 1797
    target = abstract_params(with_scan_layers(vggt_1b(), False))  # plan_conversion maps into the unrolled tree
    assert count_params(target) == 1_256_537_516 == table["total_params"]
    plans = plan_conversion(ShapeOnlySource(table), target)
    assert len(plans) == 1797
    assert len({p.path for p in plans}) == len(jax.tree_util.tree_leaves(target))


def test_tiny_manifest_maps_every_key(fixture_file):
    table = load_table(fixture_file("tiny_weights.json"))
    target = abstract_params(with_scan_layers(tiny(), False))  # plan_conversion maps into the unrolled tree
    assert count_params(target) == 48_989_164 == table["total_params"]
    assert len(plan_conversion(ShapeOnlySource(table), target)) == table["num_keys"] == 659


def test_one_error_names_every_problem(fixture_file):
    sd = state_dict(load_table(fixture_file("tiny_weights.json")))
    del sd["camera_head.trunk_norm.bias"]
    sd["camera_head.not_a_layer.weight"] = np.zeros((3, 3), np.float32)
    sd["depth_head.projects.0.weight"] = np.zeros((33, 768, 1, 1), np.float32)
    with pytest.raises(ConversionError) as err:
        convert_state_dict(sd, tiny())
    msg = str(err.value)
    assert "1 missing" in msg and "camera_head/trunk_norm/bias" in msg
    assert "1 unexpected" in msg and "camera_head.not_a_layer.weight" in msg
    assert (
        "1 wrong shape" in msg
        and "depth_head.projects.0.weight: shape [33, 768, 1, 1], expected [32, 768, 1, 1]" in msg
    )


def test_pt_and_safetensors_give_identical_params(tmp_path, fixture_file):
    torch = pytest.importorskip("torch")
    from safetensors.numpy import save_file

    sd = state_dict(load_table(fixture_file("tiny_weights.json")))
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "model.pt")
    save_file(sd, tmp_path / "model.safetensors")
    from_pt = convert_state_dict(tmp_path / "model.pt", tiny())
    from_st = convert_state_dict(tmp_path / "model.safetensors", tiny())
    from_np = convert_state_dict(sd, tiny())
    for a, b, c in zip(*(jax.tree_util.tree_leaves(p) for p in (from_pt, from_st, from_np)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    # Spot-check the transforms: Linear transposed, Conv OIHW -> HWIO, ConvTranspose IOHW -> HWIO.
    p = from_st["params"]
    np.testing.assert_array_equal(p["camera_head"]["embed_pose"]["kernel"], sd["camera_head.embed_pose.weight"].T)
    np.testing.assert_array_equal(
        p["depth_head"]["projects_0"]["kernel"], sd["depth_head.projects.0.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(
        p["depth_head"]["resize_layers_0"]["kernel"], sd["depth_head.resize_layers.0.weight"].transpose(2, 3, 0, 1)
    )


def test_bf16_source_is_accepted(tmp_path, fixture_file):
    import ml_dtypes
    from safetensors.numpy import save_file

    sd = state_dict(load_table(fixture_file("tiny_weights.json")))
    bf = {k: v.astype(ml_dtypes.bfloat16) for k, v in sd.items()}
    save_file(bf, tmp_path / "model.safetensors")
    params = convert_state_dict(tmp_path / "model.safetensors", tiny(), "bfloat16")
    leaf = params["params"]["aggregator"]["camera_token"]
    assert leaf.dtype == jax.numpy.bfloat16
    np.testing.assert_array_equal(np.asarray(leaf), bf["aggregator.camera_token"])


class OmegaManifestSource(ShapeOnlySource):
    """An Omega weights table as a source: shapes only, except the persistent buffers the converter checks."""

    def __init__(self, table):
        super().__init__(table)
        self._buffers = {w["key"]: w for w in table["weights"] if w["rule"].startswith("buffer:")}

    def load(self, key):
        from vggt_jax.parity.recipe import fixture_buffer

        if key not in self._buffers:
            raise AssertionError("a plan must not load data beyond the buffers it checks")
        return fixture_buffer(self._buffers[key])


@pytest.mark.parametrize(
    "table_name, config, keys, params, buffers",
    [
        ("omega/omega1b_weights.json", "vggt_omega_1b", 1411, 1_143_814_185, 78),
        ("omega/omega1b_text_manifest.json", "vggt_omega_1b_text", 1482, 1_349_473_321, 82),
        ("omega/omega_tiny_weights.json", "omega_tiny", 332, 5_252_105, 16),
    ],
)
def test_omega_manifests_map_every_key(fixture_file, table_name, config, keys, params, buffers):
    from vggt_jax.config import get_config
    from vggt_jax.convert.convert import detect_config

    table = load_table(fixture_file(table_name))
    assert table["num_keys"] == keys
    target = abstract_params(with_scan_layers(get_config(config), False))  # plan_conversion maps into the unrolled tree
    assert count_params(target) == params == table["total_params"]
    plans = plan_conversion(OmegaManifestSource(table), target, get_config(config))
    # Every parameter fills one leaf; the bias masks and RoPE periods are checked and consumed.
    assert len(plans) == keys - buffers == len(jax.tree_util.tree_leaves(target))
    if config != "omega_tiny":
        assert detect_config(OmegaManifestSource(table)).name == config


def test_omega_one_error_names_every_problem(fixture_file):
    from vggt_jax.config import omega_tiny

    sd = state_dict(load_table(fixture_file("omega/omega_tiny_weights.json")))
    del sd["camera_head.trunk_norm.bias"]
    sd["aggregator.inter_frame_blocks.9.ls1.gamma"] = np.zeros((128,), np.float32)
    sd["dense_head.proj.weight"] = np.zeros((16, 33, 1, 1), np.float32)
    sd["aggregator.frame_blocks.0.attn.qkv.bias_mask"] = np.ones((384,), np.float32)
    with pytest.raises(ConversionError) as err:
        convert_state_dict(sd, omega_tiny())
    msg = str(err.value)
    assert "1 missing" in msg and "camera_head/trunk_norm/bias" in msg
    assert "1 unexpected" in msg and "aggregator.inter_frame_blocks.9.ls1.gamma" in msg
    assert "1 wrong shape" in msg and "dense_head.proj.weight: shape [16, 33, 1, 1], expected [16, 32, 1, 1]" in msg
    assert "1 wrong buffer value" in msg and "aggregator.frame_blocks.0.attn.qkv.bias_mask" in msg
