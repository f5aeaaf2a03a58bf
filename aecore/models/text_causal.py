"""A byte autoencoder whose decoder is causal: ``p(x_t | x_<t, y_hat)``.

::

    x --g_a (byte embedding, 3 stride-4 convs)--> y --Q--> y_hat   (one latent per 64 bytes)
    y_hat --1x1 conv, repeated x64--> cond
    x_<t --embedding of the previous byte--> h_0 = e + cond
    h_k = h_{k-1} + W_k relu(D_k h_{k-1})     D_k: causal conv, kernel 2, dilation 2^(k mod n)
    logits_t = V relu(h_K)_t

The causal stack (ByteNet / WaveNet style: dilated causal convolutions) sees ``2^n`` bytes back;
``y_hat`` carries what the rate term finds worth its bits (a chunk's topic, its language).
Training is one parallel pass (teacher forcing). Coding is exact integer arithmetic
(:class:`CausalByteCoder`): encode runs the same parallel pass, decode runs position by position
over all chunks at once with each layer's past kept in a ring, and both compute the very same
integers, so the probabilities handed to the range coder agree on any machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aecore.codecs import ExactCoder
from aecore.codecs.match import default_table
from aecore.models.base import ConvAutoEncoder
from aecore.registry import register_model

__all__ = ["TextCausalAE"]

START = 256  # the "previous byte" of a chunk's first position


class _Bytes(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 1, L] in [0, 1] -> [N, E, L]
        return self.embed(tokens_of(x)).transpose(1, 2)


def tokens_of(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x[:, 0] * 255.0).long().clamp(0, 255)


def previous(tokens: torch.Tensor) -> torch.Tensor:
    """The byte before each position (``START`` before the first)."""
    return F.pad(tokens, (1, 0), value=START)[:, :-1]


class _CausalBlock(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(width, width, 2, dilation=dilation)
        self.out = nn.Conv1d(width, width, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        u = torch.relu(self.conv(F.pad(h, (self.dilation, 0))))
        return h + self.out(u)


@register_model("text-causal")
class TextCausalAE(ConvAutoEncoder):
    distortion_unit = "bits"
    input_layers = 1  # the byte embedding of g_a
    categorical_residual = True
    default_lmbda: ClassVar[float] = 1.0  # both terms are bits per byte
    default_learning_rate: ClassVar[float] = 1e-3
    default_preset: ClassVar[str] = "fast"
    lossless_only: ClassVar[bool] = True
    fits_classic: ClassVar[bool] = True
    #: bytes of the zstd dictionary ``fit_classic`` trains (zstd's own default size)
    dictionary_size: ClassVar[int] = 112_640
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"width": 32, "dilations": (1, 2, 4, 8), "latent_channels": 2, "chunk": 2048},
        # 2 cores: 8 blocks of 96 channels see 256 bytes back
        # (a piece is up to 64 KiB: the match model's history spans the piece; pieces of a batch of
        # files decode together)
        "fast": {"width": 96, "dilations": (1, 2, 4, 8, 16, 32, 64, 128), "latent_channels": 4, "chunk": 65536},
        # a GPU: twice as deep, 256 channels, 1 KB back
        "large": {"width": 256, "dilations": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) * 2, "latent_channels": 8,
                  "chunk": 65536},
    }

    def __init__(self, width: int = 32, dilations: Sequence[int] = (1, 2, 4, 8), latent_channels: int = 2,
                 chunk: int = 2048, native_size: int = 1024, patch_size: int = 1024, variational: bool = False) -> None:
        super().__init__(width=width, dilations=list(dilations), latent_channels=latent_channels, chunk=chunk,
                         native_size=native_size, patch_size=patch_size, variational=variational)
        self.latent_channels = latent_channels
        self.native_size = native_size
        self.chunk = chunk
        self.stride = 64
        analysis_width = max(32, width // 2)
        self.analysis = nn.Sequential(
            _Bytes(analysis_width),
            nn.Conv1d(analysis_width, analysis_width, 4, stride=4), nn.GELU(),
            nn.Conv1d(analysis_width, analysis_width, 4, stride=4), nn.GELU(),
            nn.Conv1d(analysis_width, analysis_width, 4, stride=4), nn.GELU(),
            nn.Conv1d(analysis_width, self.analysis_channels, 1),
        )
        self.condition = nn.Conv1d(latent_channels, width, 1)
        self.embed_previous = nn.Embedding(257, width)
        self.blocks = nn.ModuleList(_CausalBlock(width, d) for d in dilations)
        self.head = nn.Conv1d(width, 256, 1)
        # The zstd dictionary of the classic fallback (trained by ``fit_classic``); its size is
        # the saved one when a state dict is loaded.
        self.register_buffer("zstd_dictionary", torch.zeros(0, dtype=torch.uint8))
        #: the match model's secondary estimate (``aecore.codecs.match``), calibrated by ``fit_classic``
        self.register_buffer("match_table", torch.from_numpy(default_table()).to(torch.int32))
        #: the context-mixing coder's primer (``aecore.archive.cm2``): text ``fit_classic`` picks
        #: from the collection, modelled before each file the ``aec-cm`` codec codes
        self.register_buffer("cm_primer", torch.zeros(0, dtype=torch.uint8))
        self._exact: ExactCoder | None = None
        self._primer: Any = None
        self._finish()

    def train(self, mode: bool = True) -> TextCausalAE:
        self._exact = None  # the integer twin is rebuilt from the weights on next use
        return super().train(mode)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if prefix + "zstd_dictionary" in state_dict:
            self.zstd_dictionary = torch.empty_like(state_dict[prefix + "zstd_dictionary"])
        # bundles from before the primer have none: the model then offers no primed coder
        state_dict.setdefault(prefix + "cm_primer", torch.zeros(0, dtype=torch.uint8))
        self.cm_primer = torch.empty_like(state_dict[prefix + "cm_primer"])
        self._exact = None
        self._primer = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def fit_classic(self, samples: list[bytes], calibrate_bytes: int = 1 << 18) -> None:
        """Fit what codes beside the byte model on the collection: the context-mixing coder's
        primer, the zstd dictionary (of the pieces coded without the model, and the match model's
        primer), then the match model's table on up to ``calibrate_bytes`` of the samples (it runs
        the integer network over them: 1 MB took about 70 s at ``aec train``, for a table of
        16 x 16 cells drawn to the model's own probability where they are few)."""
        import zstandard

        from aecore.archive.prime import pick_primer
        from aecore.codecs.causal import CausalByteCoder
        from aecore.codecs.match import calibrate

        samples = [s for s in samples if s]
        primer = pick_primer(samples)
        self.cm_primer = torch.frombuffer(bytearray(primer), dtype=torch.uint8) if primer else torch.zeros(0, dtype=torch.uint8)
        self._primer = None
        try:
            d = zstandard.train_dictionary(self.dictionary_size, samples).as_bytes() if len(samples) >= 8 else b""
        except zstandard.ZstdError:  # too little or too uniform data for a dictionary: plain zstd -19
            d = b""
        self.zstd_dictionary = torch.frombuffer(bytearray(d), dtype=torch.uint8) if d else torch.zeros(0, dtype=torch.uint8)
        was = self.training
        self.eval()
        coder = CausalByteCoder(self, d, default_table())
        events, used = [], 0
        with torch.no_grad():
            for s in samples:
                if used >= calibrate_bytes:
                    break
                piece = np.frombuffer(s[: self.chunk], np.uint8).astype(np.int64)
                x = torch.from_numpy(piece.astype(np.float32) / 255)[None, None]
                x = F.pad(x, (0, (-len(piece)) % self.stride))
                events.append(coder.events(piece, torch.round(self.g_a(x))[0].numpy()))
                used += len(piece)
        self.match_table = torch.from_numpy(calibrate(events)).to(torch.int32)
        self.train(was)

    def primer(self) -> Any:
        """The context-mixing coder's primer (``aecore.archive.cm2.Primer``), None without one."""
        if self._primer is None and self.cm_primer.numel():
            from aecore.archive.cm2 import Primer

            self._primer = Primer(bytes(self.cm_primer.numpy().tobytes()))
        return self._primer

    def exact_coder(self, bits: int) -> ExactCoder:
        from aecore.codecs.causal import CausalExactCoder

        if self._exact is None:
            self._exact = CausalExactCoder(self, bytes(self.zstd_dictionary.numpy().tobytes()),
                                           self.match_table.numpy().astype(np.int64))
        return self._exact

    # -- the decoder ---------------------------------------------------------------------------

    def logits(self, tokens: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``tokens [N, L]``, ``y_hat [N, C, L/64]`` -> logits ``[N, 256, L]``."""
        cond = self.condition(y_hat).repeat_interleave(self.stride, dim=-1)[..., : tokens.shape[1]]
        h = self.embed_previous(previous(tokens)).transpose(1, 2) + cond
        for block in self.blocks:
            h = block(h)
        return self.head(torch.relu(h))

    def g_s(self, y_hat: torch.Tensor) -> torch.Tensor:
        raise TypeError("text-causal predicts each byte from the bytes before it: use logits(tokens, y_hat)")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y, out = self.sample_latent(x)
        y_hat = self.quantize(y)
        out.update(x_hat=self.logits(tokens_of(x), y_hat), y=y, y_hat=y_hat, bits=self.prior.bits(y_hat))
        return out

    def distortion(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of each byte given the bytes before it and y_hat, in bits per byte."""
        return F.cross_entropy(out["x_hat"], tokens_of(x)) / math.log(2)
