"""What a plain `pip install aec` brings (issue 27, item 18): every core command's libraries."""

from __future__ import annotations

import tomllib
from pathlib import Path


def test_core_commands_need_no_extra():
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]}
    # aec query / decode --where (duckdb); the classic codecs every archive may use
    assert {"duckdb", "imagecodecs", "brotli", "pyppmd", "zstandard", "soundfile", "numba"} <= names
