"""Official checkpoints from the Hugging Face Hub: facebook/VGGT-1B, facebook/VGGT-1B-Commercial and the gated
facebook/VGGT-Omega (FAIR Noncommercial Research License: request access on its page, then log in with
``huggingface-cli login`` or set ``HF_TOKEN``; nothing here mirrors those weights)."""

from __future__ import annotations

import os

# Preferred first: safetensors needs no torch and is read memory-mapped. VGGT-Omega ships .pt files only; its
# 512-px model is the default, ``facebook/VGGT-Omega:vggt_omega_1b_256_text.pt`` picks the text-aligned one.
HUB_FILENAMES = ("model.safetensors", "model.pt", "vggt_omega_1b_512.pt")


def download(repo_id: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None) -> str:
    """Local path of the repo's weights (``repo`` or ``repo:filename``), downloading them into the Hub cache if
    needed (honours HF_HUB_OFFLINE, HF_HOME and HF_TOKEN like every Hub client)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError

    repo_id, _, filename = repo_id.partition(":")
    errors = []
    for name in (filename,) if filename else HUB_FILENAMES:
        try:
            return hf_hub_download(repo_id, name, cache_dir=cache_dir, revision=revision)
        except GatedRepoError as e:
            raise FileNotFoundError(
                f"{repo_id} is gated: request access on https://huggingface.co/{repo_id} (its licence applies), then "
                "log in with `huggingface-cli login` or set HF_TOKEN"
            ) from e
        except (EntryNotFoundError, LocalEntryNotFoundError) as e:
            errors.append(f"{name}: {type(e).__name__}")
    raise FileNotFoundError(
        f"could not get weights of {repo_id} ({'; '.join(errors)}); check the repo id and your network, or "
        "download the weights file yourself and pass its path"
    )
