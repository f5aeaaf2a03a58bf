"""The mean-scale hyperprior latent codec (Minnen, Ballé, Toderici, NeurIPS 2018), with the
checkerboard context of He, Zheng, Sun, Wang, Qin (CVPR 2021) as an option. Any dimensionality:
``dims=2`` for images, ``dims=1`` for signals.

::

    y ──h_a──> z ──Q──> z_hat ──h_s──> hyper ─┬──────────────────────────> (mu, sigma) of y
                 EntropyBottleneck            └─ checkerboard: ep(hyper, ctx(y_hat anchors))

    Q(y) = round(y - mu) + mu     coded: round(y - mu) under N(0, sigma) (GaussianConditional)

Checkerboard: the anchors (positions with an even index sum) are coded first with the hyperprior
alone (``ctx = 0``); the others then with a masked convolution over the decoded anchors. Both
passes are parallel over all positions: two network evaluations, never a serial scan.

Bitstream: ``z`` under the bottleneck's per-channel tables, then ``y`` (anchors first when the
checkerboard is on), each a self-contained range-coded string. Everything that chooses a table
(``h_s``, the context model, the entropy parameters, ``mu``) runs as an :class:`IntegerNet`, so
encoder and decoder agree bit for bit whatever the machine.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from aecore.entropy_models import EntropyBottleneck, GaussianConditional
from aecore.latent_codecs.integer import ACT_BITS, IntegerNet, to_fixed
from aecore.layers import MaskedConv, anchor_mask, conv, deconv
from aecore.tiling import tiled

__all__ = ["HyperpriorLatentCodec"]


def _round_ste(v: torch.Tensor) -> torch.Tensor:
    """Rounding with the straight-through gradient (the synthesis sees what the decoder sees)."""
    return v + (torch.round(v) - v).detach()


def _tiles(net: IntegerNet, tile: int, margin: int, scale: Fraction) -> Any:
    return lambda a: tiled(net, a, tile, margin, scale)


class HyperpriorLatentCodec(nn.Module):
    def __init__(self, y_channels: int, z_channels: int, dims: int = 2, checkerboard: bool = False) -> None:
        super().__init__()
        m, n = y_channels, z_channels
        self.y_channels, self.dims, self.checkerboard = m, dims, checkerboard
        #: total down-sampling of h_a (z positions per y position, along each axis)
        self.stride = 4
        self.h_a = nn.Sequential(
            conv(m, n, 3, 1, dims), nn.LeakyReLU(inplace=True),
            conv(n, n, 5, 2, dims), nn.LeakyReLU(inplace=True),
            conv(n, n, 5, 2, dims),
        )
        self.h_s = nn.Sequential(
            deconv(n, m, 5, 2, dims), nn.ReLU(inplace=True),
            deconv(m, m * 3 // 2, 5, 2, dims), nn.ReLU(inplace=True),
            conv(m * 3 // 2, 2 * m, 3, 1, dims),
        )
        if checkerboard:
            self.context = MaskedConv(m, 2 * m, 5, dims)
            self.entropy_parameters = nn.Sequential(
                conv(4 * m, m * 10 // 3, 1, 1, dims), nn.ReLU(inplace=True),
                conv(m * 10 // 3, m * 8 // 3, 1, 1, dims), nn.ReLU(inplace=True),
                conv(m * 8 // 3, 2 * m, 1, 1, dims),
            )
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional()
        self._integer: dict[str, Any] | None = None

    def train(self, mode: bool = True) -> HyperpriorLatentCodec:
        self._integer = None  # weights may change: the integer twins are rebuilt on next use
        return super().train(mode)

    # -- training -----------------------------------------------------------------------------

    def _params(self, hyper: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales, means = self.entropy_parameters(torch.cat([hyper, ctx], dim=1)).chunk(2, 1)
        return scales, means

    def forward(self, y: torch.Tensor) -> dict[str, Any]:
        """``y_hat`` for the synthesis (rounded around the mean, straight-through), and the
        likelihoods of ``y`` (uniform noise in training) and ``z``."""
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z, self.training)
        hyper = self.h_s(z_hat)[(..., *(slice(0, n) for n in y.shape[2:]))]  # z covers y rounded up
        if self.checkerboard:
            anchor = anchor_mask(tuple(y.shape[2:]), y.device)
            scales_a, means_a = self._params(hyper, torch.zeros_like(hyper))
            y_anchor = (_round_ste(y - means_a) + means_a) * anchor
            scales_n, means_n = self._params(hyper, self.context(y_anchor))
            scales = scales_a * anchor + scales_n * (1 - anchor)
            means = means_a * anchor + means_n * (1 - anchor)
        else:
            scales, means = hyper.chunk(2, 1)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y - means) + means
        y_lik = self.gaussian_conditional.likelihood(y_noisy, scales, means)
        y_hat = _round_ste(y - means) + means
        return {"y_hat": y_hat, "likelihoods": {"y": y_lik, "z": z_lik}}

    # -- coding -------------------------------------------------------------------------------

    def update_tables(self) -> None:
        self.entropy_bottleneck.update_tables()
        self.gaussian_conditional.update_tables()

    def _nets(self) -> dict[str, Any]:
        if self._integer is None:
            # Integer results do not depend on how the work is split: the nets run in tiles (with
            # their receptive field around each) so memory stays bounded on large images.
            nets: dict[str, Any] = {"h_s": _tiles(IntegerNet(self.h_s), 16, 3, Fraction(self.stride)),
                                    "z": self.entropy_bottleneck.coder(), "y": self.gaussian_conditional.coder()}
            if self.checkerboard:
                nets["context"] = _tiles(IntegerNet(nn.Sequential(self.context)), 32, 2, Fraction(1))
                nets["ep"] = _tiles(IntegerNet(self.entropy_parameters), 128, 0, Fraction(1))
            self._integer = nets
        return self._integer

    def z_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``[C_z, *positions]`` of the hyper-latent of a ``y`` of ``[C_y, *positions]``."""
        return (self.entropy_bottleneck.channels, *(-(-s // self.stride) for s in y_shape[1:]))

    def _passes(self, hyper: torch.Tensor, y_positions: tuple[int, ...]):
        """Yield ``(mask, scales, means)`` per coding pass, fixed point; ``send(y_hat_fixed)``
        after each pass gives the decoded values to the next (the checkerboard's context)."""
        nets = self._nets()
        hyper = hyper[(slice(None), slice(None), *(slice(0, s) for s in y_positions))]
        if not self.checkerboard:
            scales, means = hyper.chunk(2, 1)
            yield torch.ones(y_positions, dtype=torch.bool), scales, means
            return
        anchor = anchor_mask(y_positions).to(torch.float64)
        scales, means = self._entropy_parameters(nets["ep"], hyper, None)
        y_anchor = yield anchor.bool(), scales, means
        ctx = nets["context"](y_anchor * anchor)
        scales, means = self._entropy_parameters(nets["ep"], hyper, ctx)
        yield ~anchor.bool(), scales, means

    @staticmethod
    def _entropy_parameters(ep: Any, hyper: torch.Tensor, ctx: torch.Tensor | None, rows: int = 32):
        """``ep(cat(hyper, ctx))`` (ctx 0 for anchors) in blocks of rows: 1x1 convolutions, so
        blocks give the same integers, without a full-size concatenation in memory."""
        out = None
        for i in range(0, hyper.shape[2], rows):
            h = hyper[:, :, i : i + rows]
            block = ep(torch.cat([h, ctx[:, :, i : i + rows] if ctx is not None else torch.zeros_like(h)], 1))
            if out is None:
                out = block.new_empty((*block.shape[:2], *hyper.shape[2:]))
            out[:, :, i : i + rows] = block
        return out.chunk(2, 1)

    @torch.no_grad()
    def compress(self, y: torch.Tensor) -> tuple[list[bytes], torch.Tensor]:
        """One latent ``y [C, *positions]`` -> ``([z string, y strings...], y_hat)``."""
        y = y.detach().to("cpu", torch.float64)[None]
        nets = self._nets()
        z = torch.round(self.h_a(y.to(next(self.h_a.parameters()).device, torch.float32)).cpu().double())[0]
        z_np = z.numpy().astype(np.int64)
        strings = [nets["z"].encode(z_np, self.entropy_bottleneck.channel_index(z_np.shape))]
        hyper = nets["h_s"](to_fixed(z_np)[None])
        y_fixed = torch.zeros_like(y)
        passes = self._passes(hyper, tuple(y.shape[2:]))
        step = next(passes)
        while True:
            mask, scales, means = step
            means_real = means * 2.0**-ACT_BITS
            sym = torch.round(y - means_real)[0][:, mask]
            index = self.gaussian_conditional.index(scales[0][:, mask].numpy(), ACT_BITS)
            strings.append(nets["y"].encode(sym.numpy().astype(np.int64), index))
            y_fixed[0][:, mask] = sym * 2.0**ACT_BITS + means[0][:, mask]
            try:
                step = passes.send(y_fixed)
            except StopIteration:
                break
        return strings, (y_fixed * 2.0**-ACT_BITS)[0].float()

    @torch.no_grad()
    def decompress(self, strings: list[bytes], y_shape: tuple[int, ...]) -> torch.Tensor:
        """Strings and the latent's shape ``[C, *positions]`` -> ``y_hat``, exactly as the encoder had it."""
        nets = self._nets()
        z_shape = self.z_shape(y_shape)
        z_np = nets["z"].decode(strings[0], self.entropy_bottleneck.channel_index(z_shape))
        hyper = nets["h_s"](to_fixed(z_np)[None])
        y_fixed = torch.zeros((1, *y_shape), dtype=torch.float64)
        passes = self._passes(hyper, tuple(y_shape[1:]))
        step = next(passes)
        k = 1
        while True:
            mask, scales, means = step
            index = self.gaussian_conditional.index(scales[0][:, mask].numpy(), ACT_BITS)
            sym = torch.from_numpy(nets["y"].decode(strings[k], index).astype(np.float64))
            y_fixed[0][:, mask] = sym * 2.0**ACT_BITS + means[0][:, mask]
            k += 1
            try:
                step = passes.send(y_fixed)
            except StopIteration:
                break
        return (y_fixed * 2.0**-ACT_BITS)[0].float()
