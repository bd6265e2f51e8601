"""Config variants against the fixture manifests, and JSON round trips."""

from __future__ import annotations

import json

from vggt_jax.config import VGGTConfig, get_config, tiny, vggt_1b


def test_tiny_matches_fixture_config(fixture_file):
    ref = json.loads(fixture_file("tiny_config.json").read_text())
    cfg = tiny()
    agg = ref["aggregator"]["kwargs"]
    assert (cfg.aggregator.embed_dim, cfg.aggregator.depth, cfg.aggregator.num_heads) == (
        agg["embed_dim"],
        agg["depth"],
        agg["num_heads"],
    )
    assert cfg.aggregator.patch_embed.variant == agg["patch_embed"]
    assert list(cfg.aggregator.aa_order) == agg["aa_order"] and cfg.aggregator.aa_block_size == agg["aa_block_size"]
    assert (cfg.aggregator.rope_freq, cfg.aggregator.init_values) == (agg["rope_freq"], agg["init_values"])
    cam = ref["camera_head"]["kwargs"]
    assert (cfg.camera_head.dim_in, cfg.camera_head.trunk_depth, cfg.camera_head.num_heads) == (
        cam["dim_in"],
        cam["trunk_depth"],
        cam["num_heads"],
    )
    for name in ("depth_head", "point_head"):
        kw = ref[name]["kwargs"]
        ours = getattr(cfg, name)
        for field in ("dim_in", "output_dim", "activation", "conf_activation", "features", "pos_embed", "down_ratio"):
            assert getattr(ours, field) == kw[field], (name, field)
        assert list(ours.out_channels) == kw["out_channels"]
        assert list(ours.intermediate_layer_idx) == kw["intermediate_layer_idx"]
    fe, fe_ref = cfg.track_head.feature_extractor, ref["track_head"]["feature_extractor"]["kwargs"]
    assert (fe.features, fe.feature_only, fe.down_ratio, fe.pos_embed) == (
        fe_ref["features"],
        fe_ref["feature_only"],
        fe_ref["down_ratio"],
        fe_ref["pos_embed"],
    )
    tr, tr_ref = cfg.track_head.tracker, ref["track_head"]["tracker"]["kwargs"]
    for field in ("stride", "corr_levels", "corr_radius", "latent_dim", "hidden_size", "depth", "max_scale"):
        assert getattr(tr, field) == tr_ref[field], field
    assert cfg.track_head.iters == ref["track_head"]["kwargs"]["iters"]


def test_1b_matches_fixture_config(fixture_file):
    ref = json.loads(fixture_file("vggt1b_config.json").read_text())
    cfg = vggt_1b()
    assert cfg.aggregator.depth == ref["aggregator"]["kwargs"]["depth"] == 24
    assert cfg.camera_head.trunk_depth == ref["camera_head"]["kwargs"]["trunk_depth"] == 4
    assert list(cfg.depth_head.intermediate_layer_idx) == [4, 11, 17, 23]


def test_json_round_trip():
    for name in ("tiny", "vggt_1b"):
        cfg = get_config(name).replace(dtype="bfloat16")
        assert VGGTConfig.from_json(cfg.to_json()) == cfg
    no_track = tiny().replace(track_head=None)
    assert VGGTConfig.from_json(no_track.to_json()) == no_track
