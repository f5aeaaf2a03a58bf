"""Learned entropy models of latents: densities for the rate term in training, and the integer
tables the range coder codes under at inference.

- :class:`FactorizedLaplacePrior` — a Laplace per channel (the small conv autoencoders).
- :class:`EntropyBottleneck` — a learned non-parametric density per channel (Ballé et al. 2018),
  for hyper-latents ``z``.
- :class:`GaussianConditional` — a Gaussian whose mean and scale are predicted per element, coded
  under a fixed table of scales (Ballé et al. 2018; Minnen et al. 2018).
- :class:`TableCoder` — range coding of integers under a set of integer probability tables.
"""

from aecore.entropy_models.bottleneck import EntropyBottleneck
from aecore.entropy_models.gaussian import GaussianConditional, scale_table
from aecore.entropy_models.laplace import FactorizedLaplacePrior
from aecore.entropy_models.tables import TableCoder

__all__ = ["EntropyBottleneck", "FactorizedLaplacePrior", "GaussianConditional", "TableCoder", "scale_table"]
