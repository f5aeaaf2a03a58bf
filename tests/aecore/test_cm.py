"""The first context-mixing coder (aecore.archive.cm), kept so the archives it wrote restore:
exact on any bytes, smaller than the classic text codecs on text, deterministic — a payload made
in one process decodes in another; new archives code with cm2 (tests/aecore/test_cm2.py)."""

from __future__ import annotations

import lzma
import os
import subprocess
import sys

import pyppmd
import pytest

from aecore.archive import CodecContext, choose, decode_payload, get_file_codec
from aecore.archive.cm import cm_compress, cm_decompress
from jobs.sample_data import make_text_collection


@pytest.mark.parametrize("data", [b"", b"a", bytes(range(256)) * 3, os.urandom(5000), b"abc" * 4000])
def test_any_bytes_come_back(data):
    assert cm_decompress(cm_compress(data)) == data


def test_text_is_smaller_than_by_xz_and_ppmd(tmp_path):
    make_text_collection(tmp_path, 30, max_bytes=6000, seed=11)
    text = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()))
    cm = len(cm_compress(text))
    enc = pyppmd.Ppmd7Encoder(6, 16 << 20)
    assert cm < len(lzma.compress(text, preset=9 | lzma.PRESET_EXTREME))
    assert cm < len(enc.encode(text) + enc.flush(endmark=False))
    assert choose(text, "text", CodecContext()).codec == "cm2"  # its successor codes new archives
    assert decode_payload("cm", get_file_codec("cm").encode(text, CodecContext()), CodecContext(), len(text)) == text


def test_a_payload_decodes_in_another_process_with_other_threads(tmp_path):
    make_text_collection(tmp_path, 5, max_bytes=4000, seed=12)
    text = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()))
    payload = tmp_path / "payload"
    code = ("import sys; from aecore.archive.cm import cm_compress; "
            "open(sys.argv[2], 'wb').write(cm_compress(open(sys.argv[1], 'rb').read()))")
    (tmp_path / "text").write_bytes(text)
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "text"), str(payload)], check=True, env=env)
    assert payload.read_bytes() == cm_compress(text)  # the same bytes wherever it runs
    assert cm_decompress(payload.read_bytes()) == text


def test_a_boastful_payload_is_refused():
    payload = cm_compress(b"hello " * 100)
    with pytest.raises(ValueError, match="claims"):
        cm_decompress(payload, size=10)
