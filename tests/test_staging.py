"""staged_directory: a folder written all or nothing."""

from __future__ import annotations

import pytest

from vggt_jax.staging import staged_directory


def test_replaces_when_complete_and_leaves_the_old_one_on_error(tmp_path):
    final = tmp_path / "out"
    with staged_directory(final) as tmp:
        (tmp / "a.txt").write_text("first")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "first" and oct(final.stat().st_mode & 0o777) == "0o755"
    with pytest.raises(KeyboardInterrupt), staged_directory(final) as tmp:
        (tmp / "a.txt").write_text("second")
        raise KeyboardInterrupt
    assert (final / "a.txt").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_directory(final, tmp_path / "named.partial") as tmp:
        assert tmp.name == "named.partial" and not list(tmp.iterdir())
    assert not (final / "a.txt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
