"""The zoo's ``text-cm``: the ``text-fast`` model with what ``aec train`` fits beside it on a
collection — the context-mixing coder's primer, the zstd dictionary and the match table — fitted
on the text zoo's training split, as ``aec train`` would fit them on a user's collection.

    python -m recipes.text_data
    python -m recipes.text_primer [--out aecore/zoo/weights/text-cm.safetensors]

The neural weights are ``text-fast``'s, unchanged. Samples: up to 4,000
training files in a fixed random order, the first 64 KB of each (``cluster.train.fit_classic``'s
rule).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aecore.bundle import build_from_bundle, dump_bundle, read_bundle
from aecore.zoo import zoo_bundle

__all__ = ["fit"]

LIMIT, MAX_BYTES = 4000, 1 << 16


def fit(data: Path, out: Path) -> dict[str, int]:
    header = read_bundle(zoo_bundle("text-fast"))
    model = build_from_bundle(header)
    files = sorted(p for p in (data / "train").rglob("*") if p.is_file())
    picks = np.random.default_rng(0).permutation(len(files))[:LIMIT]
    samples = [files[i].read_bytes()[:MAX_BYTES] for i in picks]
    model.fit_classic(samples)
    extra = {**header["extra"], "classic_fit": {"recipe": "recipes.text_primer", "data": str(data / "train"),
                                                "files": len(samples), "bytes": sum(map(len, samples))}}
    out.write_bytes(dump_bundle(model, header["model"], header["modality"], extra))
    return {"files": len(samples), "primer": int(model.cm_primer.numel()),
            "zstd_dictionary": int(model.zstd_dictionary.numel())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/text"))
    parser.add_argument("--out", type=Path, default=Path("aecore/zoo/weights/text-cm.safetensors"))
    args = parser.parse_args()
    print(fit(args.data, args.out))


if __name__ == "__main__":
    main()
