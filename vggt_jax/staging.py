"""Writing a folder all or nothing: into a hidden sibling, renamed into place when complete.

Used by every writer of a whole folder (converted checkpoints, exported models, infer.py's ``--out``, the batch
job's scenes), so an error or a kill never leaves a half-written result under the final name.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_directory(final: str | Path, tmp: str | Path | None = None) -> Iterator[Path]:
    """Yield a fresh folder to write ``final``'s contents into: ``tmp`` (emptied first), by default a new hidden
    sibling ``.NAME.partial*``. When the block ends it replaces ``final`` (an existing one is removed); on any error
    (KeyboardInterrupt included) it is removed and ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial", dir=final.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the result unreadable to others
    else:
        tmp = Path(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
