"""Official checkpoints from the Hugging Face Hub: facebook/VGGT-1B, facebook/VGGT-1B-Commercial and the gated
facebook/VGGT-Omega (FAIR Noncommercial Research License: request access on its page, then log in with
``huggingface-cli login`` or set ``HF_TOKEN``; nothing here mirrors those weights)."""

from __future__ import annotations

import os

# Preferred first: safetensors needs no torch and is read memory-mapped. VGGT-Omega ships .pt files only; its
# 512-px model is the default, ``facebook/VGGT-Omega:vggt_omega_1b_256_text.pt`` picks the text-aligned one.
HUB_FILENAMES = ("model.safetensors", "model.pt", "vggt_omega_1b_512.pt")


def hub_reachable(timeout: float = 3.0) -> str | None:
    """None if a TCP connection to the Hub endpoint (or the HTTPS proxy, when one is set) opens within ``timeout``
    seconds, else why not: one short try, instead of the HTTP client's retries (tens of seconds offline)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"cannot reach {host}:{port} ({e.strerror or type(e).__name__})"
    return None


def download(repo_id: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None) -> str:
    """Local path of the repo's weights (``repo`` or ``repo:filename``), downloading them into the Hub cache if
    needed (honours HF_HUB_OFFLINE, HF_HOME and HF_TOKEN like every Hub client). A file already in the cache is used
    without touching the network; without network and cache this fails in a few seconds with one message."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError

    repo_id, _, filename = repo_id.partition(":")
    names = (filename,) if filename else HUB_FILENAMES
    for name in names:
        try:
            return hf_hub_download(repo_id, name, cache_dir=cache_dir, revision=revision, local_files_only=True)
        except LocalEntryNotFoundError:
            continue
    where = f"the Hub cache ({cache_dir or constants.HF_HUB_CACHE})"
    fix = "or download the weights file elsewhere and pass its path (--checkpoint PATH)"
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{repo_id} is not in {where} and HF_HUB_OFFLINE is set; unset it to download, {fix}")
    unreachable = hub_reachable()
    if unreachable:
        raise FileNotFoundError(f"{unreachable}, so {repo_id} cannot be downloaded, and it is not in {where}; {fix}")
    errors = []
    for name in names:
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
        f"could not get weights of {repo_id} ({'; '.join(errors)}); check the repo id and your network, {fix}"
    )
