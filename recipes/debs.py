"""Debian packages as training data: ``apt-get download`` + ``dpkg -x`` (no root, no install).

Only packages the zoo's recipes name are fetched; the packages kept for independent evaluation
(``EVALUATION_ONLY``) are refused for training by :func:`training_packages`.
"""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["EVALUATION_ONLY", "distinct_files", "extract", "package_files", "training_packages"]

#: kept for independent evaluation: never trained or tuned on
EVALUATION_ONLY = frozenset({
    "mate-backgrounds", "plasma-workspace-wallpapers", "opencv-doc", "libjxl-testdata", "ktuberling-data",
    "pocketsphinx-testdata", "alsa-utils", "wesnoth-1.16-music", "wesnoth-music", "sonic-pi-samples", "linux-doc",
    "linux-doc-6.1", "python3.11-doc", "fortunes", "fortunes-min", "dict-gcide", "wordnet", "wordnet-base", "manpages",
})


def training_packages(names: list[str]) -> list[str]:
    bad = sorted(set(names) & EVALUATION_ONLY)
    if bad:
        raise ValueError(f"{', '.join(bad)} are kept for independent evaluation; never train on them")
    return names


def extract(package: str, cache: Path) -> Path:
    """The package's files under ``cache/x/PACKAGE`` (downloaded once)."""
    target = cache / "x" / package
    if target.exists():
        return target
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
    tmp = target.with_suffix(".part")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(found[-1]), str(tmp)], check=True)
    tmp.rename(target)
    return target


def package_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of every file under an extracted package whose name ends in one of
    ``suffixes`` — also those inside Qt ``.rcc`` resource files and ``.pk3`` zips — outside
    ``/usr/share/doc`` (screenshots, examples)."""
    from recipes.rcc import rcc_files

    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("usr/share/doc") or not path.is_file():
            continue
        if path.suffix.lower() in suffixes:
            yield rel, path.read_bytes()
        elif path.suffix == ".rcc":
            for inner, blob in rcc_files(path.read_bytes()):
                if inner.lower().endswith(suffixes):
                    yield f"{rel}{inner}", blob
        elif path.suffix == ".pk3":  # a zip
            with zipfile.ZipFile(path) as z:
                for inner in sorted(z.namelist()):
                    if inner.lower().endswith(suffixes):
                        yield f"{rel}/{inner}", z.read(inner)


def distinct_files(roots: Iterable[tuple[str, Path]], suffixes: tuple[str, ...]) -> Iterator[tuple[str, str, bytes]]:
    """``(package, path, bytes)`` of :func:`package_files` over extracted packages ``(name,
    root)``, each distinct file once: the same file shipped twice (sizes, themes, packages)
    counts once."""
    seen: set[str] = set()
    for package, root in roots:
        for rel, data in package_files(root, suffixes):
            digest = hashlib.sha256(data).hexdigest()
            if digest not in seen:
                seen.add(digest)
                yield package, rel, data
