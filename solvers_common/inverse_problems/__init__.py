"""Image restoration: degradations (deepinv physics), unrolled dictionary
denoisers and plug-and-play (Kowalski et al. 2024), learned proximal gradient
and GLOW-Prox (Hadou et al. 2024), their training, and the scores of the
restorations. Free of benchopt."""
from .dictionary import ConvolutionalDictionaryDenoiser, dictionary_norm, sparse_coding_fista
from .metrics import psnr
from .networks import Glow, GlowProx, UnrolledProximalGradient
from .physics import (
    DEGRADATIONS,
    check_degradation,
    data_gradient,
    make_physics,
    measure,
    operator_norm,
)
from .restorers import DictionaryPnP, ProximalGradient, TVProx, iterates_of
from .training import DenoiserTrainer, RestorationTrainer

__all__ = [
    "DEGRADATIONS",
    "ConvolutionalDictionaryDenoiser",
    "DenoiserTrainer",
    "DictionaryPnP",
    "Glow",
    "GlowProx",
    "ProximalGradient",
    "RestorationTrainer",
    "TVProx",
    "UnrolledProximalGradient",
    "check_degradation",
    "data_gradient",
    "dictionary_norm",
    "iterates_of",
    "make_physics",
    "measure",
    "operator_norm",
    "psnr",
    "sparse_coding_fista",
]
