"""Data-test setup: grain worker processes read absl flags, which must count as parsed outside an absl app."""

from __future__ import annotations

from absl import flags

flags.FLAGS.mark_as_parsed()
