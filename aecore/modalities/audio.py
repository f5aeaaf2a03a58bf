"""Audio: WAV, FLAC, OGG (Vorbis/Opus) through soundfile; any sample rate, channel count and length.

Every channel is resampled to the model's rate and the channels are laid end to end, so a
mono model sees one signal; the original rate, channel count and frame count travel in the
payload and decode restores them (written as 16-bit WAV).

Lossless mode codes the file's own PCM samples at their own rate: each original frame is
predicted by interpolating the reconstruction (at the model rate) at the frame's instant, and
the exact 16-bit (or 8-bit) values are range-coded around that prediction; the WAV container
rebuilds the file byte for byte. Files that are not 8/16-bit PCM WAV are stored as they are.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from aecore.containers import Exact, get_container
from aecore.modalities.base import Sample, UnreadableInput
from aecore.modalities.info import Info
from aecore.modalities.sequence import SequenceModality
from aecore.registry import register_modality

__all__ = ["AudioInfo", "AudioModality", "MODEL_RATE"]

MODEL_RATE = 16_000
#: the Opus targets a report compares against (kbit/s per channel; the file also carries Ogg pages)
OPUS_KBPS = (6, 8, 12, 16, 24, 32, 64)
#: runs of digital silence (exact zeros at the model rate) this long or longer are kept silent
SILENCE_MIN = 160
#: sample rates a file may have, in both directions (encode and a payload's claim at decode)
MIN_RATE, MAX_RATE = 1_000, 384_000
_INFO = struct.Struct("<QIHQ")  # frames, rate, channels, resampled frames per channel


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst or x.shape[-1] == 0:
        return x.astype(np.float32)
    g = math.gcd(src, dst)
    from scipy.signal import resample_poly  # scipy.signal costs ~1 s to import: only where audio is resampled

    return resample_poly(x, dst // g, src // g, axis=-1).astype(np.float32)


def _no_runs() -> np.ndarray:
    return np.zeros((0, 2), np.int64)


@dataclass(frozen=True, eq=False)
class AudioInfo(Info):
    """A sound: ``shape`` is (frames, channels) of the file at its own ``rate``; the model sees
    each channel resampled to ``resampled`` samples at ``MODEL_RATE``, channels end to end;
    ``silence`` holds the ``[k, 2]`` (start, length) runs of digital silence of that signal."""

    rate: int = MODEL_RATE
    resampled: int = 0
    silence: np.ndarray = field(default_factory=_no_runs)

    @property
    def positions(self) -> tuple[int, ...]:
        return (int(self.shape[1]) * int(self.resampled),)

    def rate_unit(self) -> tuple[str, float]:
        return "kbps", 1000.0 * max(self.shape[0], 1) / self.rate

    def pack(self) -> bytes:
        n, c = self.shape
        out, end = [_varint(len(self.silence))], 0
        for start, length in self.silence:  # each run as (gap since the previous one, length)
            out += [_varint(int(start) - end), _varint(int(length))]
            end = int(start + length)
        return _INFO.pack(n, self.rate, c, self.resampled) + b"".join(out)

    @classmethod
    def unpack(cls, data: bytes, version: int) -> tuple[AudioInfo, int]:
        n, rate, c, resampled = _INFO.unpack_from(data)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"payload claims a sample rate of {rate} Hz, outside {MIN_RATE}-{MAX_RATE} Hz")
        pos = _INFO.size
        if version < 4:  # no silence runs before version 4
            return cls(shape=(n, c), rate=rate, resampled=resampled), pos
        count, pos = _read_varint(data, pos)
        if count > c * resampled // SILENCE_MIN + 1:
            raise ValueError(f"{count} silent runs in {c * resampled} samples")
        runs, end = [], 0
        for _ in range(count):
            gap, pos = _read_varint(data, pos)
            length, pos = _read_varint(data, pos)
            if length < SILENCE_MIN or end + gap + length > c * resampled:
                raise ValueError("a silent run outside the signal")
            runs.append((end + gap, length))
            end += gap + length
        return cls(shape=(n, c), rate=rate, resampled=resampled, silence=np.array(runs, np.int64).reshape(-1, 2)), pos

    def finish(self, x_hat: np.ndarray) -> np.ndarray:
        """Runs of digital silence in the input (exact zeros, at least ``SILENCE_MIN`` samples)
        are restored as silence, not as the codec's low-level noise (as Opus does)."""
        if not len(self.silence):
            return x_hat
        x_hat = x_hat.copy()
        for start, length in self.silence:
            x_hat[..., start : start + length] = 0.0
        return x_hat


@register_modality("audio")
class AudioModality(SequenceModality):
    name = "audio"
    gate_metric = ("snr", 1)
    extensions = (".wav", ".flac", ".ogg", ".oga", ".opus")
    default_model = "audio-hyperprior"
    output_suffix = ".wav"
    containers = ("wav",)
    info_type = AudioInfo

    def load(self, data: bytes) -> Sample:
        if not data:
            raise UnreadableInput("empty file (0 bytes)")
        try:
            frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise UnreadableInput(f"not a readable audio file: {str(exc).splitlines()[0]}") from None
        n, c = frames.shape
        if c == 0:
            raise UnreadableInput("audio file with no channels")
        if not MIN_RATE <= rate <= MAX_RATE:  # resampling an odd rate costs minutes and gigabytes
            raise UnreadableInput(f"sample rate {rate} Hz is outside {MIN_RATE:,}-{MAX_RATE:,} Hz; not encoded")
        per_channel = _resample(frames.T, rate, MODEL_RATE)  # [C, T']
        x = np.clip(per_channel.reshape(1, -1), -1.0, 1.0)
        return Sample(x=x, info=AudioInfo(shape=(n, c), rate=int(rate), resampled=int(per_channel.shape[1]),
                                          silence=silent_runs(x[0])))

    def restore(self, x_hat: np.ndarray, info: Info) -> bytes:
        n, c = info.shape
        per_channel = x_hat[0, : c * info.resampled].reshape(c, info.resampled)
        frames = _resample(per_channel, MODEL_RATE, info.rate)
        frames = np.pad(frames, ((0, 0), (0, max(0, n - frames.shape[1]))))[:, :n]
        buf = io.BytesIO()
        sf.write(buf, np.clip(frames.T, -1.0, 1.0), info.rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    def accepts(self, parsed: Exact, sample: Sample) -> bool:
        n, c = sample.info.shape
        return parsed.values is not None and parsed.values.shape == (c, n)

    def symbols(self, x: np.ndarray, info: Info) -> np.ndarray:
        if info.exact is None or info.exact.values is None:
            raise ValueError("lossless audio codes the file's own PCM samples: load the file with Compressor.load")
        values = info.exact.values
        parts = [values[ch, lo:hi] for ch, lo, hi in _frames(info)]
        return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)

    def lossless_view(self, x_hat: np.ndarray, info: Info) -> np.ndarray:
        n, c = info.shape
        r = int(info.resampled)
        half = float(1 << (info.bits - 1))
        length = info.piece_extent[-1]
        signal = x_hat[0, :length].astype(np.float64)
        parts = []
        for ch, lo, hi in _frames(info):
            # frame f of channel ch sits at model position ch*r + f*r/n, here relative to the piece
            at = ch * r - info.offset + np.arange(lo, hi, dtype=np.float64) * (r / n)
            parts.append(np.interp(at, np.arange(length, dtype=np.float64), signal))
        pred = np.concatenate(parts) if parts else np.zeros(0)
        pred = (np.clip(pred, -1.0, 1.0) * half + half) / (2.0 * half - 1.0)
        # A piece holding every frame of every channel is laid out [channels, frames], so the
        # coder can code channels relative to the first; otherwise as one row of segments.
        whole = len(parts) == c and all(p.size == n for p in parts)
        return pred.reshape(c, n) if whole and n else pred[None]

    def from_symbols(self, symbols: np.ndarray, info: Info) -> bytes:
        if info.exact is None or not info.exact.container:
            raise ValueError("this lossless audio payload names no container; decode it with the aec that wrote it")
        return get_container(info.exact.container).build(symbols, info.exact.recipe)

    def quality(self, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
        n = min(x.shape[-1], x_hat.shape[-1])
        x, x_hat = x[..., :n].astype(np.float64), x_hat[..., :n].astype(np.float64)
        noise = float(np.sum((x - x_hat) ** 2))
        signal = float(np.sum(x**2))
        snr = math.inf if noise == 0 else 10.0 * math.log10(max(signal, 1e-12) / noise)
        return {"snr": snr, "lsd": log_spectral_distance(x.ravel(), x_hat.ravel())}

    def classic_codecs(self, sample: Sample, lossless: bool = False) -> list[tuple[str, bytes, np.ndarray]]:
        if lossless:
            return self._lossless_codecs(sample)
        c = int(sample.info.shape[1])
        ref = sample.x[0].reshape(c, -1)  # at the model rate, where quality is measured
        out = []
        for kbps in OPUS_KBPS:
            buf = io.BytesIO()
            # libsndfile sets Opus's target to (1 - level) * 250 + 6 kbit/s per channel
            sf.write(buf, ref.T, MODEL_RATE, format="OGG", subtype="OPUS", compression_level=1 - (kbps - 6) / 250)
            dec, _ = sf.read(io.BytesIO(buf.getvalue()), always_2d=True, dtype="float32")
            dec = dec.T[:, : ref.shape[1]]
            dec = np.pad(dec, ((0, 0), (0, ref.shape[1] - dec.shape[1])))
            out.append((f"opus {kbps}k", buf.getvalue(), dec.reshape(1, -1)))
        return out

    def _lossless_codecs(self, sample: Sample) -> list[tuple[str, bytes, np.ndarray]]:
        """FLAC of the file's own samples (needs the file: ``Compressor.load`` keeps it)."""
        if sample.info.file is None:
            return []
        frames, rate = sf.read(io.BytesIO(sample.info.file), dtype="int16", always_2d=True)
        out = []
        for level in (0.5, 1.0):
            buf = io.BytesIO()
            sf.write(buf, frames, rate, format="FLAC", subtype="PCM_16", compression_level=level)
            out.append((f"flac level {level:g}", buf.getvalue(), sample.x))
        return out

    def preview(self, sample: Sample, x_hat: np.ndarray, reference: tuple[str, np.ndarray] | None = None
                ) -> dict[str, Any]:
        """Spectrograms (dB, first channel, 256-point frames at the model rate) of the original,
        aec's restore and ``reference`` (Opus at about the same rate) side by side."""
        from scipy.signal import spectrogram

        n = sample.info.positions[0]

        def spec(x: np.ndarray) -> np.ndarray:
            _, _, sxx = spectrogram(x[0, :n].astype(np.float64), fs=MODEL_RATE, nperseg=256, noverlap=128)
            return 10.0 * np.log10(sxx + 1e-10)

        panels = [("original", spec(sample.x)), ("aec", spec(x_hat))]
        if reference is not None:
            panels.append((reference[0], spec(reference[1])))
        return {"kind": "spectrogram", "panels": panels, "rate": MODEL_RATE, "hop": 128}


def _frames(info: Info):
    """``(channel, first frame, end frame)`` of the original frames a piece of the model signal
    owns: frame f of channel ch belongs to model position ``ch*r + floor(f*r/n)``."""
    n, c = info.shape
    r = int(info.resampled)
    if n == 0 or r == 0:
        return
    start = info.offset
    end = start + info.piece_extent[-1]
    for ch in range(c):
        a, b = max(start - ch * r, 0), min(end - ch * r, r)
        if a < b:
            yield ch, -(-a * n // r), -(-b * n // r)


def silent_runs(signal: np.ndarray) -> np.ndarray:
    """``[k, 2]`` (start, length) of the runs of exact zeros of at least ``SILENCE_MIN`` samples."""
    zero = np.concatenate([[False], signal == 0, [False]]).astype(np.int8)
    edges = np.diff(zero)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ends - starts >= SILENCE_MIN
    return np.stack([starts[keep], ends[keep] - starts[keep]], axis=1).astype(np.int64)


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 56:
            raise ValueError("truncated silent runs")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def log_spectral_distance(x: np.ndarray, x_hat: np.ndarray, nperseg: int = 512) -> float:
    """Mean over frames of the RMS difference of the log power spectra, in dB."""
    if x.size < 16:
        return 0.0
    nperseg = min(nperseg, x.size)
    from scipy.signal import stft

    _, _, a = stft(x, fs=MODEL_RATE, nperseg=nperseg)
    _, _, b = stft(x_hat, fs=MODEL_RATE, nperseg=nperseg)
    la = 10 * np.log10(np.abs(a) ** 2 + 1e-10)
    lb = 10 * np.log10(np.abs(b) ** 2 + 1e-10)
    return float(np.mean(np.sqrt(np.mean((la - lb) ** 2, axis=0))))
