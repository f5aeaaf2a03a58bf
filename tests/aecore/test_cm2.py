"""The second context-mixing coder (aecore.archive.cm2) and its primed form (``aec-cm``): exact on
any bytes, smaller than the classic text codecs, deterministic across processes and thread counts;
a primer makes small alike files smaller, the primed state is the same for every file whatever
was coded before it (or beside it, in another thread), and a payload refuses the wrong primer."""

from __future__ import annotations

import lzma
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyppmd
import pytest

from aecore import build_model, dump_bundle, load_bundle
from aecore.archive import CodecContext, choose, decode_payload
from aecore.archive.cm2 import Primer, cm2_compress, cm2_decompress
from aecore.archive.prime import pick_primer

ROOT = Path(__file__).parents[2]
#: prose and code the project ships: the collection a primer is picked from
COLLECTION = [p.read_bytes() for p in sorted([*(ROOT / "docs").glob("*.md"), *(ROOT / "cluster").glob("*.py")])]
#: files of the same kind the primer never saw
UNSEEN = [p.read_bytes()[:6000] for p in sorted((ROOT / "jobs").glob("*.py")) if p.stat().st_size > 3000]


@pytest.fixture(scope="module")
def primer() -> Primer:
    return Primer(pick_primer(COLLECTION, size=64 * 1024))


@pytest.mark.parametrize("data", [b"", b"a", bytes(range(256)) * 3, os.urandom(5000), b"abc" * 4000])
def test_any_bytes_come_back(data, primer):
    assert cm2_decompress(cm2_compress(data)) == data
    assert cm2_decompress(cm2_compress(data, primer), primer=primer) == data


def test_text_is_smaller_than_by_xz_and_ppmd_and_chosen():
    text = b"".join(COLLECTION)
    cm = len(cm2_compress(text))
    enc = pyppmd.Ppmd7Encoder(6, 16 << 20)
    assert cm < len(lzma.compress(text, preset=9 | lzma.PRESET_EXTREME))
    assert cm < len(enc.encode(text) + enc.flush(endmark=False))
    assert choose(text[:50_000], "text", CodecContext()).codec == "cm2"


def test_a_primer_of_alike_text_makes_small_files_smaller(primer):
    assert len(primer.text) > 16_000
    plain = sum(len(cm2_compress(f)) for f in UNSEEN)
    primed = sum(len(cm2_compress(f, primer)) for f in UNSEEN)
    assert primed < 0.9 * plain


def test_every_file_starts_from_the_same_primed_state(primer):
    alone = [cm2_compress(f, Primer(primer.text)) for f in UNSEEN[:3]]  # each from a fresh primer
    assert [cm2_compress(f, primer) for f in UNSEEN[:3]] == alone  # one primer, file after file
    assert [cm2_compress(f, primer) for f in reversed(UNSEEN[:3])] == alone[::-1]
    data = UNSEEN[1]  # a stream that outgrows its buffer stops early: what it changed is undone all the same
    hist = np.frombuffer(primer.text + data, dtype=np.uint8).copy()
    assert primer.code(hist, len(data), hist[:0], np.zeros(100, dtype=np.uint8), 1) == -1
    assert [cm2_compress(f, primer) for f in UNSEEN[:3]] == alone
    big = UNSEEN[0] * 20  # larger than the journal's reach: coded on a copy of the state
    assert cm2_compress(big, primer) == cm2_compress(big, Primer(primer.text))
    found: dict[int, bytes] = {}

    def code(i: int) -> None:
        found[i] = cm2_compress(UNSEEN[i % 3], primer)

    threads = [threading.Thread(target=code, args=(i,)) for i in range(6)]  # one borrows, the others copy
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [found[i] for i in range(6)] == alone * 2


def test_a_payload_refuses_a_missing_or_other_primer(primer):
    payload = cm2_compress(UNSEEN[0], primer)
    with pytest.raises(ValueError, match="primer"):
        cm2_decompress(payload)
    with pytest.raises(ValueError, match="primer"):
        cm2_decompress(payload, primer=Primer(primer.text[:-1]))
    with pytest.raises(ValueError, match="claims"):
        cm2_decompress(payload, size=10, primer=primer)


def test_a_payload_decodes_in_another_process_with_other_threads(tmp_path, primer):
    (tmp_path / "text").write_bytes(UNSEEN[1])
    (tmp_path / "primer").write_bytes(primer.text)
    code = ("import sys; from aecore.archive.cm2 import Primer, cm2_compress; p = Primer(open(sys.argv[3], 'rb').read()); "
            "open(sys.argv[2], 'wb').write(cm2_compress(open(sys.argv[1], 'rb').read(), p) + cm2_compress(b'x' * 999))")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "payload"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "text"), str(out), str(tmp_path / "primer")], check=True,
                   env=env)
    assert out.read_bytes() == cm2_compress(UNSEEN[1], primer) + cm2_compress(b"x" * 999)  # the same bytes anywhere
    assert cm2_decompress(cm2_compress(UNSEEN[1], primer), primer=primer) == UNSEEN[1]


def test_the_text_model_carries_its_primer_into_the_archive_codec():
    model = build_model("text-causal", "tiny", chunk=1024).uniform_prior(8)
    model.fit_classic(COLLECTION)
    assert model.cm_primer.numel() > 16_000
    compressor = load_bundle(dump_bundle(model, "text-causal", "text"), lossless=True)  # through the bundle
    ctx = CodecContext(compressors={"text": compressor})
    choice = choose(UNSEEN[2], "text", ctx)
    assert choice.codec == "aec-cm" and choice.learned  # the primed coder wins a small alike file
    assert choice.sizes["aec-cm"] < choice.sizes["cm2"]
    assert decode_payload("aec-cm", choice.payload, ctx, len(UNSEEN[2])) == UNSEEN[2]
    with pytest.raises(ValueError, match="names no text model"):
        decode_payload("aec-cm", choice.payload, CodecContext(), len(UNSEEN[2]))


def test_a_model_bundled_before_primers_loads_without_one():
    model = build_model("text-causal", "tiny", chunk=1024).uniform_prior(8)
    state = {k: v for k, v in model.state_dict().items() if k != "cm_primer"}
    fresh = build_model("text-causal", "tiny", chunk=1024)
    fresh.load_state_dict(state)
    assert fresh.primer() is None
    assert choose(UNSEEN[0], "text", CodecContext(compressors={"text": load_bundle(
        dump_bundle(fresh.uniform_prior(8), "text-causal", "text"), lossless=True)})).codec != "aec-cm"
