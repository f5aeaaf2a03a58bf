"""The causal text model: exact integer coding (parallel encode, stepped decode), across
processes and thread counts, the zstd fallback per piece, and batched decode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aecore import Compressor, build_model, dump_bundle, get_modality, load_bundle
from aecore.codecs.causal import CausalByteCoder
from aecore.regularizers import build_objective

ROOT = Path(__file__).parents[2]
TEXT = b"".join(p.read_bytes() for p in sorted((ROOT / "docs").glob("*.md")))  # real prose the project ships


@pytest.fixture(scope="module")
def trained() -> Compressor:
    """The tiny preset trained briefly on the project's own docs (enough to be far below 8 bits)."""
    torch.manual_seed(0)
    model = build_model("text-causal", "tiny", chunk=1024)
    objective = build_objective({"plain": None}, lmbda=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    corpus = np.frombuffer(TEXT, np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(80):
        starts = rng.integers(0, len(corpus) - 512, 16)
        x = torch.from_numpy(np.stack([corpus[s : s + 512] for s in starts]).astype(np.float32) / 255)[:, None]
        loss = objective(model, x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.uniform_prior(8)
    other = b"".join(p.read_bytes() for p in sorted((ROOT / "bench").glob("*.py")))  # a dictionary of other text
    model.fit_classic([other[i : i + 4096] for i in range(0, len(other), 4096)])
    return load_bundle(dump_bundle(model, "text-causal", "text"))


def test_the_integer_twin_codes_what_the_float_model_predicts(trained):
    model = trained.model
    tokens = np.frombuffer(TEXT[:2048], np.uint8).astype(np.int64)
    x = torch.from_numpy(tokens.astype(np.float32) / 255)[None, None]
    with torch.no_grad():
        y_hat = torch.round(model.g_a(x))
        ce = torch.nn.functional.cross_entropy(model.logits(torch.from_numpy(tokens)[None], y_hat),
                                               torch.from_numpy(tokens)[None]).item() / np.log(2)
    coder = CausalByteCoder(model)
    # the twin alone (before the match model mixes in what the piece repeats, which depends on the text)
    weights = coder._weights(coder._logits_parallel(torch.from_numpy(tokens)[None], y_hat)[0]).astype(np.float64)
    twin = float(-np.log2(weights[np.arange(len(tokens)), tokens] / weights.sum(axis=1)).mean())
    assert ce < 6.0  # it learned something
    assert abs(twin - ce) < 0.05  # fixed point, 1/32-nat table: within a twentieth of a bit
    exact = coder.cost_bits(tokens, y_hat[0].numpy()) / len(tokens)  # with the match model
    data = coder.encode(tokens, y_hat[0].numpy())
    assert 8 * len(data) < exact * len(tokens) + 64
    [back] = coder.decode([data], [y_hat[0].numpy()], [len(tokens)])
    assert np.array_equal(back, tokens)


def test_files_round_trip_and_pieces_fall_back_to_zstd_where_it_is_smaller(trained):
    # Random bytes cost a text model far more than 8 bits each; zstd stores them raw (which piece
    # wins must not hang on what the repository's files happen to hold, so no text here).
    noise = np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    prose = TEXT[:5000]
    out = trained.encode([trained.load(noise), trained.load(prose), trained.load(b"")], [True, True, True])
    for enc, original in zip(out, (noise, prose, b"")):
        assert trained.decode(enc.payload)[0] == original
    assert out[0].quality["model_used"] == 0.0 and out[0].quality["bits_per_byte"] < 8.5  # raw zstd blocks and framing
    assert out[1].quality["model_used"] > 0 and out[1].quality["bits_per_byte"] < 6.5
    restored = trained.decode_many([e.payload for e in out])  # pieces of all files stepped together
    assert [r[0] for r in restored] == [noise, prose, b""]


def test_lossy_mode_is_refused_in_one_line(trained):
    with pytest.raises(ValueError, match="set lossless: true"):
        Compressor(get_modality("text"), trained.model, lossless=False)


_DECODE = """
import sys, torch
torch.set_num_threads(2)
from aecore import load_bundle
comp = load_bundle(open(sys.argv[1], "rb").read())
sys.stdout.buffer.write(comp.decode(open(sys.argv[2], "rb").read())[0])
"""


def test_a_payload_from_one_thread_decodes_in_another_process_on_two(trained, tmp_path):
    blob = dump_bundle(trained.model, "text-causal", "text")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        payload = trained.encode([trained.load(TEXT[:6000])])[0].payload
    finally:
        torch.set_num_threads(before)
    (tmp_path / "m").write_bytes(blob)
    (tmp_path / "p").write_bytes(payload)
    out = subprocess.run([sys.executable, "-c", _DECODE, str(tmp_path / "m"), str(tmp_path / "p")],
                         capture_output=True, check=True).stdout
    assert out == TEXT[:6000]
