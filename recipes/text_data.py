"""Text for the text zoo model, from Debian packages the set-up can install (never from the
packages kept for independent evaluation), split by file into train and held-out.

    python -m recipes.text_data [--out build/zoo-data/text]

Sources: Perl's documentation (POD), the GNU coding standards (Info, HTML), the Debian Reference
(HTML), Django's documentation (HTML) and source (Python, templates, translations). Kept: text
files (no NUL bytes, mostly printable) of 64 bytes to 1 MB, gzip-compressed ones unpacked; man
pages are left out (the machine's man pages are kept for evaluation). A file is held out when
``sha256(package/path) % 100 < 10``. ``--python-doc`` also extracts a held-out set from
python3.11-doc (evaluation only: never trained on) to compare with earlier figures.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

from recipes.debs import extract, training_packages

__all__ = ["PACKAGES", "collect"]

PACKAGES = training_packages(["perl-doc", "gnu-standards", "debian-reference-en", "python-django-doc", "python3-django"])
SUFFIXES = (".pod", ".pm", ".pl", ".txt", ".html", ".htm", ".py", ".po", ".js", ".css", ".rst", ".info", ".texi",
            ".json", ".xml", ".md", ".tmpl", ".sql")
MIN_BYTES, MAX_BYTES = 64, 1 << 20


def _text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    sample = data[:4096]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) or b >= 128 for b in sample)
    return printable >= 0.95 * len(sample)


def files(root: Path):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or "/man/" in f"/{rel}" or path.is_symlink():
            continue
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
        if not name.lower().endswith(SUFFIXES) and ".info" not in name:
            continue
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except OSError:
                continue
        if MIN_BYTES <= len(data) <= MAX_BYTES and _text(data):
            yield rel.removesuffix(".gz"), data


def heldout(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100 < 10


def collect(cache: Path, out: Path, packages: list[str], split: bool = True) -> dict[str, int]:
    counts = {"train": 0, "heldout": 0, "bytes_train": 0, "bytes_heldout": 0}
    seen: set[str] = set()
    for package in packages:
        for rel, data in files(extract(package, cache)):
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            key = f"{package}/{rel}"
            part = "heldout" if (not split or heldout(key)) else "train"
            target = out / part / package / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            counts[part] += 1
            counts[f"bytes_{part}"] += len(data)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("build/debs"))
    parser.add_argument("--out", type=Path, default=Path("build/zoo-data/text"))
    parser.add_argument("--python-doc", action="store_true", help="also python3.11-doc, held out (evaluation only)")
    args = parser.parse_args()
    print(collect(args.cache, args.out, PACKAGES))
    if args.python_doc:
        print(collect(args.cache, args.out / "python-doc", ["python3.11-doc"], split=False))


if __name__ == "__main__":
    main()
