"""Memory-mapped pages are released from this process's resident memory without losing data."""

import numpy as np
import pytest

from vggt_jax.inference.pages import frames, release_pages


def _rss_file_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    pytest.skip("no /proc/self/status RssFile on this system")


def test_release_keeps_data_and_drops_resident_pages(tmp_path):
    path = tmp_path / "a.npy"
    written = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(32, 512, 512))  # 32 MiB
    for k in range(len(written)):
        written[k] = k
    before = _rss_file_kb()
    release_pages(written)
    assert before - _rss_file_kb() > 24 * 1024  # the 32 MiB written through the map left this process
    view = np.asarray(np.load(path, mmap_mode="r"))  # a plain view of a map: found through .base
    start = _rss_file_kb()
    firsts = [float(frame[0, 0]) for frame in frames(view)]
    assert firsts == list(range(32))
    assert _rss_file_kb() - start < 12 * 1024  # read a frame at a time, released every 8 frames
    np.testing.assert_array_equal(np.load(path)[:, 7, 9], np.arange(32, dtype=np.float32))
    release_pages(np.zeros(3))  # not a map: nothing to do
