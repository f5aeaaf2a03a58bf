"""aecore: convolutional autoencoders, latent codecs and modalities. No Ray here."""

from aecore.bundle import dump_bundle, load_bundle, read_bundle
from aecore.codecs import FactorizedCategoricalCodec
from aecore.compressor import Compressor, Encoded
from aecore.metrics import ms_ssim, psnr
from aecore.modalities import Modality, Sample, UnreadableInput, get_modality
from aecore.models import ConvAutoEncoder, build_model
from aecore.regularizers import Objective, build_objective

__all__ = [
    "Compressor", "ConvAutoEncoder", "Encoded", "FactorizedCategoricalCodec", "Modality", "Objective",
    "Sample", "UnreadableInput", "build_model", "build_objective", "dump_bundle", "get_modality",
    "load_bundle", "ms_ssim", "psnr", "read_bundle",
]
