"""Test setup: 8 fake CPU devices (before jax is imported) and access to ../shared/fixtures."""

from __future__ import annotations

import os
from pathlib import Path

_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()

import pytest  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixture_file():
    """``fixture_file("tiny_weights.json") -> Path``; a missing fixture fails in CI and skips elsewhere."""

    def get(name: str) -> Path:
        path = FIXTURES / name
        if not path.exists():
            message = f"fixture {path} is missing (fixtures live in ../shared/fixtures beside the repo)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        return path

    return get
