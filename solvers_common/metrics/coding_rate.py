"""Coding rates, compression and sparsity of a transformer's tokens, layer by
layer (Yu et al., "White-box transformers via sparse rate reduction",
NeurIPS 2023, section 2 and their measurement of the compression term and the
sparsity across layers).

For one image, the ``n`` tokens of a layer form ``Z in R^{d x n}`` (here rows
of a ``(n, d)`` tensor). With ``eps^2 = 0.01`` as in the authors' measurement
code:

- coding rate ``R(Z) = 1/2 logdet(I + d / (n eps^2) Z^T Z)`` of the
  unit-normalized tokens;
- compression term ``R^c(Z | U) = sum_k 1/2 logdet(I + p / (n eps^2)
  (U_k^T Z)^T (U_k^T Z))``, with the ``d x p`` bases ``U_k`` of a CRATE
  layer's heads; as in the authors' code, each projected token ``U_k^T z`` is
  unit-normalized, so that the value measures how the tokens spread within
  the subspaces, not their lengths;
- sparsity: the fraction of exact zeros of a layer's code.

Each is computed per image and averaged over the batch. ``logdet`` of the
``n x n`` matrix ``I + a G`` (``G`` a Gram matrix, so ``I + a G`` is positive
definite) comes from its Cholesky factor, in float64.
"""
import time

import torch

from ..device import synchronize
from ..models.transformers import MultiHeadSubspaceSelfAttention, VisionTransformer

# eps^2 of the authors' measurement code (their CodingRate module).
EPS_SQUARED = 0.01


def _unit_rows(vectors, tiny=1e-12):
    return vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True).clamp_min(tiny)


def _half_logdet_identity_plus(gram, scale):
    """``1/2 logdet(I + scale * gram)`` over the last two dimensions."""
    identity = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    cholesky = torch.linalg.cholesky(identity + scale * gram)
    # logdet(L L^T) = 2 sum log diag(L).
    return torch.log(torch.diagonal(cholesky, dim1=-2, dim2=-1)).sum(-1)


def coding_rate(tokens, eps_squared=EPS_SQUARED):
    """``R(Z) = 1/2 logdet(I + d / (n eps^2) Z^T Z)`` of unit-normalized
    tokens.

    Parameters
    ----------
    tokens : tensor (..., n, d)
        One token set per leading index (tokens as rows).

    Returns
    -------
    tensor (...)
    """
    n, d = tokens.shape[-2:]
    unit = _unit_rows(tokens.to(torch.float64))
    return _half_logdet_identity_plus(unit @ unit.transpose(-2, -1), d / (n * eps_squared))


def compression_coding_rate(tokens, bases, eps_squared=EPS_SQUARED):
    """``R^c(Z | U) = sum_k 1/2 logdet(I + p / (n eps^2) (U_k^T Z)^T (U_k^T
    Z))``, each projected token ``U_k^T z`` unit-normalized (the authors'
    measurement).

    Parameters
    ----------
    tokens : tensor (..., n, d)
    bases : tensor (K, d, p)
        The bases ``U_k``, for example
        :meth:`~solvers_common.models.transformers.MultiHeadSubspaceSelfAttention.subspace_bases`.

    Returns
    -------
    tensor (...)
    """
    n = tokens.shape[-2]
    p = bases.shape[-1]
    # (..., n, d) x (K, d, p) -> (..., K, n, p): every head at once.
    projected = _unit_rows(torch.einsum("...nd,kdp->...knp", tokens.to(torch.float64),
                                        bases.to(torch.float64)))
    gram = projected @ projected.transpose(-2, -1)
    return _half_logdet_identity_plus(gram, p / (n * eps_squared)).sum(-1)


def zero_fraction(tensor):
    """Fraction of the entries of ``tensor`` that are exactly zero."""
    return float((tensor == 0).to(torch.float64).mean())


def _as_model_input(model, images):
    parameter = next(model.parameters())
    return images.to(parameter.device, parameter.dtype)


def is_transformer(model):
    """Whether ``model`` is one of the transformers of the model zoo, for
    which :func:`transformer_layer_metrics` is defined."""
    return isinstance(model, VisionTransformer)


@torch.no_grad()
def transformer_layer_metrics(model, images, eps_squared=EPS_SQUARED):
    """Per-layer metrics of a transformer of the model zoo on ``images``,
    averaged over the images, for layers ``l = 1 .. depth``:

    - ``coding_rate_layer_<l>``: ``R(LN(Z^l))``, the tokens layer ``l``'s
      attention sees (every transformer);
    - ``compression_layer_<l>``: ``R^c(LN(Z^l) | U^l)`` with the layer's own
      bases, the quantity its MSSA step descends (CRATE models only; the
      authors measure it on the same tokens, the input of the projection);
    - ``token_sparsity_layer_<l>``: fraction of exact zeros of the layer's
      code (:class:`~solvers_common.models.transformers.LayerState`): its
      output for ViT and CRATE, the ISTA code for CRATE-alpha.

    The model is run as it is (call ``eval()`` before, for scores), on its
    device and in its dtype.
    """
    _, states = model.inspect(_as_model_input(model, images))
    metrics = {}
    for index, (layer, state) in enumerate(zip(model.layers, states), start=1):
        metrics[f"coding_rate_layer_{index}"] = float(
            coding_rate(state.attention_input, eps_squared).mean())
        if isinstance(layer.attention, MultiHeadSubspaceSelfAttention):
            metrics[f"compression_layer_{index}"] = float(compression_coding_rate(
                state.attention_input, layer.attention.subspace_bases(), eps_squared).mean())
        metrics[f"token_sparsity_layer_{index}"] = zero_fraction(state.code)
    return metrics


@torch.no_grad()
def last_layer_class_attention(model, images):
    """Attention of the class token to the patches in the last layer, per
    head, as images: shape ``(N, heads, rows, columns)`` of the patch grid
    (each map sums to 1 minus the class token's attention to itself)."""
    _, states = model.inspect(_as_model_input(model, images))
    attention = states[-1].attention[:, :, 0, 1:]  # (N, heads, patches)
    return attention.reshape(*attention.shape[:2], *model.grid_shape)


def parameter_count(model):
    """Number of scalar parameters of ``model``."""
    return sum(parameter.numel() for parameter in model.parameters())


@torch.no_grad()
def images_per_second(model, images, repeats=3):
    """Images per second of a forward pass of ``model`` on ``images`` (one
    batch, on the model's device and in its dtype, in eval mode), the best of
    ``repeats`` timings after a warm-up pass; the model's mode is restored."""
    parameter = next(model.parameters())
    images = _as_model_input(model, images)
    was_training = model.training
    model.eval()
    try:
        model(images)
        best = float("inf")
        for _ in range(repeats):
            synchronize(parameter.device)
            start = time.perf_counter()
            model(images)
            synchronize(parameter.device)
            best = min(best, time.perf_counter() - start)
    finally:
        model.train(was_training)
    return images.shape[0] / best
