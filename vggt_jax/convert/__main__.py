"""``python -m vggt_jax.convert SRC --out CKPT_DIR [--config VARIANT] [--dtype float32|bfloat16]``

Converts an official VGGT or VGGT-Omega state dict (``.safetensors`` or ``.pt``), or ``--hub facebook/VGGT-1B`` /
``--hub facebook/VGGT-Omega`` (gated: request access first), into an orbax checkpoint with the model config beside it
(load it with ``vggt_jax.load_checkpoint(CKPT_DIR)``). Without ``--config`` the variant is told from the keys
(VGGT-1B, VGGT-Omega 1B, or VGGT-Omega 1B with the text head).
"""

from __future__ import annotations

import argparse
import sys

from vggt_jax.config import VARIANTS, get_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vggt_jax.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", help="official model.safetensors, model.pt or vggt_omega_1b_*.pt")
    parser.add_argument(
        "--hub",
        help="Hugging Face repo id (or repo:filename) to download instead, e.g. facebook/VGGT-1B, facebook/VGGT-Omega, "
        "facebook/VGGT-Omega:vggt_omega_1b_256_text.pt",
    )
    parser.add_argument("--cache-dir", help="Hugging Face cache directory (default: the Hub's own)")
    parser.add_argument("--out", required=True, help="checkpoint directory to write (must not exist or be empty)")
    parser.add_argument(
        "--config", default=None, choices=sorted(VARIANTS), help="model variant (default: told from the keys)"
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float64"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    args = parser.parse_args(argv)
    if (args.src is None) == (args.hub is None):
        parser.error("give exactly one of SRC or --hub")

    from tqdm import tqdm

    from vggt_jax.convert.checkpoint import save_checkpoint
    from vggt_jax.convert.convert import ConversionError, convert_state_dict, count_params, detect_config

    try:
        src = args.src
        if args.hub:
            from vggt_jax.convert.hub import download

            src = download(args.hub, args.cache_dir)
        config = get_config(args.config) if args.config else detect_config(src)
        config = config.replace(param_dtype=args.dtype)
        with tqdm(desc="converting", unit="tensor", file=sys.stderr) as bar:

            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            params = convert_state_dict(src, config, args.dtype, progress=progress)
        out = save_checkpoint(args.out, config, params, overwrite=args.overwrite)
    except (ConversionError, FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({count_params(params):,} parameters, {args.dtype}, config {config.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
