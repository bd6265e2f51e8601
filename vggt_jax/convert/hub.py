"""Official checkpoints from the Hugging Face Hub (facebook/VGGT-1B, facebook/VGGT-1B-Commercial)."""

from __future__ import annotations

import os

# Preferred first: safetensors needs no torch and is read memory-mapped.
HUB_FILENAMES = ("model.safetensors", "model.pt")


def download(repo_id: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None) -> str:
    """Local path of the repo's weights, downloading them into the Hub cache if needed (honours HF_HUB_OFFLINE
    and HF_HOME like every Hub client)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    errors = []
    for filename in HUB_FILENAMES:
        try:
            return hf_hub_download(repo_id, filename, cache_dir=cache_dir, revision=revision)
        except (EntryNotFoundError, LocalEntryNotFoundError) as e:
            errors.append(f"{filename}: {type(e).__name__}")
    raise FileNotFoundError(
        f"could not get weights of {repo_id} ({'; '.join(errors)}); check the repo id and your network, or "
        "download model.safetensors yourself and pass its path"
    )
