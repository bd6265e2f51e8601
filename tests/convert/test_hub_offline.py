"""``--hub`` without network: a cached download is used without touching the network, and an uncached one fails in
seconds with one line, nothing written (the network is blocked inside the test)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from vggt_jax.convert.hub import download
from vggt_jax.jobs.infer import InferOptions, run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "synthetic_room"


@pytest.fixture()
def no_network(monkeypatch, tmp_path):
    """Every connection and name lookup fails as on an unplugged machine; an empty Hub cache, online mode."""
    import huggingface_hub.constants

    def refuse(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    return tmp_path / "hub"


def test_uncached_hub_fails_fast_with_one_line(no_network, tmp_path):
    out = tmp_path / "recon"
    opts = InferOptions(images=str(EXAMPLE), out=str(out), checkpoint="facebook/VGGT-1B")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        run(opts)
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "\n" not in message and "cannot reach huggingface.co:443" in message
    assert "facebook/VGGT-1B" in message and "--checkpoint PATH" in message
    assert not out.exists() and not list(tmp_path.glob(".recon*"))


def test_cached_hub_download_needs_no_network(no_network, tmp_path):
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = no_network / "models--facebook--VGGT-1B"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "snapshots" / revision / "model.safetensors").write_bytes(b"weights")
    start = time.perf_counter()
    path = download("facebook/VGGT-1B")
    assert time.perf_counter() - start < 5.0
    assert Path(path) == repo / "snapshots" / revision / "model.safetensors"
