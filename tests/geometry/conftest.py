"""Geometry-test setup: upstream's outputs for the geometry functions (``geometry.npz`` in ../shared/fixtures)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def geo(fixture_file):
    with np.load(fixture_file("geometry.npz")) as f:
        return {k: f[k] for k in f.files}
