"""Photos for the image zoo, from Debian packages the set-up can install (never from the
packages kept for independent evaluation), split by file into train and held-out.

    python -m recipes.image_data [--out build/zoo-data/images]

What is kept: RGB photos at least 256 px a side — colour images with many distinct colours
(artwork, icons and screenshots have few), opaque (cut-outs with transparency are dropped),
outside ``/usr/share/doc`` (screenshots). Large photos are downscaled (area filter) to at most
1024 px a side, as CompressAI's training sets are, which also removes their JPEG artefacts.
A file is held out when ``sha256(package/path) % 100 < 15``; held-out photos are never trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from recipes.debs import distinct_files, extract, training_packages

__all__ = ["PACKAGES", "collect"]

PACKAGES = training_packages([
    "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "ukui-wallpapers", "gcompris-qt-data",
    "stellarium-data", "kstars-data", "tuxpaint-stamps-default", "marble-data",
])
MIN_SIDE, MAX_SIDE, MIN_COLOURS = 256, 1024, 4000
_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def _photo(data: bytes) -> Image.Image | None:
    try:
        img = Image.open(io.BytesIO(data))
        if min(img.size) < MIN_SIDE or img.mode not in ("RGB", "RGBA"):
            return None
        img.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if img.mode == "RGBA":
        if np.asarray(img.getchannel("A")).min() < 255:
            return None
        img = img.convert("RGB")
    small = img.copy()
    small.thumbnail((256, 256))
    colours = len(np.unique(np.asarray(small).reshape(-1, 3), axis=0))
    if colours < MIN_COLOURS:
        return None
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    return img


def heldout(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100 < 15


def collect(cache: Path, out: Path) -> dict[str, int]:
    counts = {"train": 0, "heldout": 0}
    for package, rel, data in distinct_files(((p, extract(p, cache)) for p in PACKAGES), _SUFFIXES):
        img = _photo(data)
        if img is None:
            continue
        key = f"{package}/{rel}"
        split = "heldout" if heldout(key) else "train"
        name = hashlib.sha256(key.encode()).hexdigest()[:12] + "-" + Path(rel).stem[:40] + ".png"
        (out / split).mkdir(parents=True, exist_ok=True)
        img.save(out / split / name)
        counts[split] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("build/debs"))
    parser.add_argument("--out", type=Path, default=Path("build/zoo-data/images"))
    args = parser.parse_args()
    print(collect(args.cache, args.out))


if __name__ == "__main__":
    main()
