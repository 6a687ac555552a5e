"""Unrolled (learned) sparse-coding networks and their training."""
from .networks import ALISTA, FISTA, ISTA, LISTA, LISTACP, SLISTA, LISTATied, UnrolledNetwork
from .training import ConstrainedUnrolledTrainer, UnrolledTrainer

__all__ = [
    "ALISTA",
    "FISTA",
    "ISTA",
    "LISTA",
    "LISTACP",
    "LISTATied",
    "SLISTA",
    "UnrolledNetwork",
    "UnrolledTrainer",
    "ConstrainedUnrolledTrainer",
]
