"""End-to-end golden parity through the same code as ``python -m vggt_jax.parity``: recipe weights written as an
official .safetensors, converted by the real converter, every output and intermediate compared."""

from __future__ import annotations

import pytest

from vggt_jax.parity.run import run_parity


def assert_all_pass(records):
    failed = [r for r in records if r["pass"] is False]
    assert not failed, failed
    assert sum(r["pass"] is True for r in records) >= 10, records


def test_tiny_float64(fixture_file, tmp_path):
    records = run_parity(fixture_file("tiny_s3_112x154_q8.npz"), "tiny", x64=True, workdir=tmp_path, log=print)
    assert_all_pass(records)
    names = {r["output"] for r in records}
    assert {"dino_patchtokens_frame0", "agg_tokens", "track_list[0]", "track", "vis", "conf", "depth"} <= names


def test_tiny_float32(fixture_file, tmp_path):
    assert_all_pass(run_parity(fixture_file("tiny_s3_112x154_q8.npz"), "tiny", x64=False, workdir=tmp_path, log=print))


@pytest.mark.slow
def test_vggt_1b_float32(fixture_file, tmp_path):
    fixture_file("vggt1b_weights.json")
    records = run_parity(fixture_file("vggt1b_s2_392x518_q16.npz"), "vggt_1b", x64=False, workdir=tmp_path, log=print)
    assert_all_pass(records)


# VGGT-Omega (shared/fixtures/omega): the same code path, the family named by the config.
OMEGA_NAMES = {"dino_patchtokens_frame0", "agg_tokens", "agg_rope_sin", "dense_feat3", "pose_enc", "depth"}


def test_omega_tiny_float64(fixture_file, tmp_path):
    fixture_file("omega/omega_tiny_weights.json")
    records = run_parity(fixture_file("omega/omega_tiny_s3_96x144.npz"), "omega_tiny", x64=True, workdir=tmp_path)
    assert_all_pass(records)
    assert all(r["pass"] is not None for r in records), [r for r in records if r["pass"] is None]
    names = {r["output"] for r in records if r["pass"]}
    assert OMEGA_NAMES | {"text_alignment_embedding", "camera_and_register_tokens"} <= names, names


def test_omega_tiny_float32(fixture_file, tmp_path):
    fixture_file("omega/omega_tiny_weights.json")
    assert_all_pass(
        run_parity(fixture_file("omega/omega_tiny_s3_96x144.npz"), "omega_tiny", x64=False, workdir=tmp_path)
    )


@pytest.mark.slow
def test_vggt_omega_1b_float32(fixture_file, tmp_path):
    fixture_file("omega/omega1b_weights.json")
    records = run_parity(
        fixture_file("omega/omega1b_s2_416x624.npz"), "vggt_omega_1b", x64=False, workdir=tmp_path, log=print
    )
    assert_all_pass(records)
    # Every golden array is compared (DINOv3's first and last 64 patch tokens, the aggregator, both heads).
    assert all(r["pass"] is not None for r in records) and len(records) == 11, records
