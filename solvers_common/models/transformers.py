"""Vision transformers for image classification: the vision transformer
(ViT) and the white-box transformers CRATE and CRATE-alpha.

The three share the patch embedding with a class token and learned position
embeddings, and the classification head (layer normalization and a linear map
of the class token); they differ in their layers:

- ``vit`` (Dosovitskiy et al., ICLR 2021, eqs. 1-4): pre-LayerNorm
  multi-head self-attention with separate query, key and value projections,
  then an MLP of hidden width ``4 * width``, both with residual connections;
- ``crate`` (Yu et al., NeurIPS 2023): multi-head subspace self-attention
  (MSSA), one projection ``U_k`` per head serving as query, key and value,
  then one ISTA step of the non-negative Lasso on a dictionary ``D``;
- ``crate_alpha`` (Yang et al., NeurIPS 2024): CRATE whose ISTA block codes
  the tokens on an overcomplete dictionary (``4 * width`` atoms) with two ISTA
  steps from zero, decodes them with a separate dictionary and adds them to
  the residual stream.

Tokens are rows: a batch of token sets has shape ``(N, T, width)`` with
``T = 1 + (H / patch_size) * (W / patch_size)`` (class token first). Every
model has :meth:`VisionTransformer.inspect`, which also returns per-layer
states (the tokens each attention sees, its attention weights, the layer's
sparse code) for the coding-rate and sparsity metrics of
:mod:`solvers_common.metrics.coding_rate`.
"""
import math
import numbers
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

TRANSFORMER_MODELS = ("vit", "crate", "crate_alpha")

# The small defaults, trainable in minutes on a CPU.
DEFAULT_WIDTH = 64
DEFAULT_DEPTH = 4
DEFAULT_HEADS = 4
# The default patch size gives at most this many patches along each side:
# 8 x 8 digits -> patch 2, 28 x 28 MNIST -> patch 7, 32 x 32 CIFAR -> patch 8
# (16 patches each).
DEFAULT_PATCHES_PER_SIDE = 4
# ViT's MLP hidden width over the width (Dosovitskiy et al. 2021, Table 1).
MLP_RATIO = 4
# CRATE-alpha's number of dictionary atoms over the width (Yang et al. 2024).
OVERCOMPLETE_RATIO = 4
# Standard deviation of every weight, class token and position embedding at
# initialization (biases zero), as in the reference ViT implementations (timm,
# DeiT: a normal of std 0.02 truncated at two standard deviations). Kaiming's
# scale, sqrt(2 / fan_in) = 0.18 for width 64, makes the attention scores of a
# token with itself dominate (2 sqrt(p) against about 2 for the others), so
# attention starts as the identity; see solvers_common.models.initialization
# for the measured effect.
WEIGHT_INIT_STD = 0.02


class LayerState(NamedTuple):
    """What one layer computed on a batch, for the metrics.

    attention_input : (N, T, width)
        The tokens the layer's attention sees, ``LN(Z^l)``.
    attention : (N, heads, T, T)
        Its attention weights; row ``i`` is the distribution token ``i``
        attends with.
    code : (N, T, features)
        The layer's sparse code: its output ``Z^{l+1}`` for ViT and CRATE,
        the ISTA code of ``4 * width`` atoms for CRATE-alpha (whose output,
        a residual sum, is dense by construction).
    """

    attention_input: torch.Tensor
    attention: torch.Tensor
    code: torch.Tensor


# ---------------------------------------------------------------------------
# Sizes and their checks
# ---------------------------------------------------------------------------


def _check_positive_integer(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1.")


def _check_positive_number(name, value):
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{name}={value!r} must be a finite number > 0.")


def default_patch_size(height, width):
    """The smallest patch size that divides both image sides and leaves at
    most :data:`DEFAULT_PATCHES_PER_SIDE` patches along the longer one (the
    whole common side when none does)."""
    common = math.gcd(height, width)
    for patch_size in range(1, common + 1):
        if common % patch_size == 0 and max(height, width) <= (
                DEFAULT_PATCHES_PER_SIDE * patch_size):
            return patch_size
    return common


def check_transformer_sizes(input_shape, width, depth, heads, patch_size):
    """Raise ValueError, naming the parameter, on sizes no transformer of
    this module can take: non-positive sizes, a ``width`` that ``heads`` does
    not divide, a ``patch_size`` that does not divide the image."""
    for name, value in (("width", width), ("depth", depth), ("heads", heads),
                        ("patch_size", patch_size)):
        _check_positive_integer(name, value)
    if width % heads:
        raise ValueError(f"width={width} must be divisible by heads={heads}: each head "
                         "works on width / heads dimensions.")
    height, image_width = input_shape[1:]
    if height % patch_size or image_width % patch_size:
        raise ValueError(f"patch_size={patch_size} must divide the image size "
                         f"{height} x {image_width}.")


def check_ista_parameters(eta, lmbd):
    """Raise ValueError on a non-positive ISTA step size ``eta`` or sparsity
    weight ``lmbd``."""
    _check_positive_number("eta", eta)
    _check_positive_number("lmbd", lmbd)


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------


class PatchEmbedding(nn.Module):
    """Dosovitskiy et al. (ICLR 2021), eq. 1:
    ``z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos``: each non-overlapping
    ``patch_size x patch_size`` patch, flattened, is mapped linearly (with a
    bias) to ``width`` dimensions, a learned class token is put first and
    learned position embeddings are added."""

    def __init__(self, input_shape, width, patch_size):
        super().__init__()
        channels, height, image_width = input_shape
        self.patch_size = patch_size
        self.grid_shape = (height // patch_size, image_width // patch_size)
        n_patches = self.grid_shape[0] * self.grid_shape[1]
        self.projection = nn.Linear(channels * patch_size**2, width)
        self.class_token = nn.Parameter(WEIGHT_INIT_STD * torch.randn(width))
        self.position_embedding = nn.Parameter(
            WEIGHT_INIT_STD * torch.randn(n_patches + 1, width))

    @torch.no_grad()
    def initialize_own_parameters_(self, generator):
        """Draw the class token and position embeddings from ``generator``
        (N(0, 0.02^2)); called by
        :func:`~solvers_common.models.sparse_initialization_`, which draws the
        projection as every linear layer."""
        for parameter in (self.class_token, self.position_embedding):
            parameter.copy_(WEIGHT_INIT_STD * torch.randn(
                parameter.shape, generator=generator, dtype=parameter.dtype))

    def forward(self, images):
        n, channels, height, width = images.shape
        p = self.patch_size
        # (N, C, H, W) -> (N, rows, columns, C, p, p): patches in raster order.
        patches = images.reshape(n, channels, height // p, p, width // p, p)
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(n, -1, channels * p * p)
        tokens = self.projection(patches)
        class_tokens = self.class_token.expand(n, 1, -1)
        return torch.cat([class_tokens, tokens], dim=1) + self.position_embedding


def _split_heads(features, heads):
    """(N, T, heads * p) -> (N, heads, T, p)."""
    n, t, width = features.shape
    return features.view(n, t, heads, width // heads).transpose(1, 2)


def _merge_heads(features):
    """(N, heads, T, p) -> (N, T, heads * p): the heads concatenated."""
    n, heads, t, head_width = features.shape
    return features.transpose(1, 2).reshape(n, t, heads * head_width)


def attention_multiply_adds(n_tokens, width, heads):
    """Multiply-adds of the products between activations of multi-head
    attention on one set of ``n_tokens`` tokens: for each of the ``heads``
    heads of ``p = width / heads`` dimensions, the scores ``Q_k K_k^T``
    (``n_tokens x p`` times ``p x n_tokens``: ``n_tokens^2 p``) and the mixing
    ``A_k V_k`` (``n_tokens x n_tokens`` times ``n_tokens x p``: ``n_tokens^2
    p``), ``2 n_tokens^2 width`` in all (Vaswani et al., NeurIPS 2017, eq. 1).
    The same in CRATE's MSSA, whose query, key and value are all ``U_k^T Z``
    (Yu et al., NeurIPS 2023, section 2.3): the Gram matrix ``(U_k^T Z)^T
    (U_k^T Z)`` and its product with ``U_k^T Z``. Softmax, scaling and the
    projections (weights, counted as linear layers) are not included."""
    head_width = width // heads
    return heads * 2 * n_tokens**2 * head_width


def scaled_dot_product_attention(query, key, value, return_attention=False):
    """``softmax(query key^T / sqrt(p)) value`` for every head at once
    (Vaswani et al., NeurIPS 2017, eq. 1). Training takes torch's fused
    kernel; ``return_attention=True`` computes the weights explicitly to
    hand them back (else None)."""
    if not return_attention:
        return F.scaled_dot_product_attention(query, key, value), None
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    attention = torch.softmax(scores, dim=-1)
    return attention @ value, attention


class MultiHeadSelfAttention(nn.Module):
    """ViT's multi-head self-attention (Vaswani et al. 2017, section 3.2.2;
    Dosovitskiy et al. 2021, eq. 2 and appendix A): for each head ``k``,
    ``softmax(Q_k K_k^T / sqrt(p)) V_k`` with separate query, key and value
    projections (with biases), stored stacked in one ``(3 width, width)``
    matrix so that they cost one matrix product; the heads are concatenated
    and mapped back by an output projection."""

    def __init__(self, width, heads):
        super().__init__()
        self.width, self.heads = width, heads
        self.query_key_value = nn.Linear(width, 3 * width)
        self.output = nn.Linear(width, width)

    def activation_multiply_adds(self, n_tokens):
        """Multiply-adds between activations on one set of ``n_tokens``
        tokens (:func:`attention_multiply_adds`): no weight takes part in
        them, so sparse weights do not reduce them; read by
        :func:`~solvers_common.metrics.flops_ratio`."""
        return attention_multiply_adds(n_tokens, self.width, self.heads)

    def forward(self, tokens, return_attention=False):
        n, t, width = tokens.shape
        # (N, T, 3 width) -> 3 x (N, heads, T, p)
        query, key, value = self.query_key_value(tokens).view(
            n, t, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        mixed, attention = scaled_dot_product_attention(query, key, value, return_attention)
        return self.output(_merge_heads(mixed)), attention


class MultiHeadSubspaceSelfAttention(nn.Module):
    """CRATE's multi-head subspace self-attention (Yu et al., NeurIPS 2023,
    section 2.3, the SSA and MSSA operators): with ``Z`` the ``d x n`` token
    matrix and ``U_k`` the ``d x p`` basis of head ``k``,

        SSA(Z | U_k) = (U_k^T Z) softmax((U_k^T Z)^T (U_k^T Z) / sqrt(p)),

    the softmax taken over each column; MSSA concatenates the heads and maps
    them back by an output projection (with a bias), as in the authors' code,
    in place of the paper's ``p / (n eps^2) [U_1, ..., U_K]``. One projection
    per head serves as query, key and value, a gradient step on the
    compression term ``R^c(Z | U)``. ``projection.weight`` holds
    ``[U_1, ..., U_K]^T``."""

    def __init__(self, width, heads):
        super().__init__()
        self.width, self.heads = width, heads
        self.projection = nn.Linear(width, width, bias=False)
        self.output = nn.Linear(width, width)

    def activation_multiply_adds(self, n_tokens):
        """Multiply-adds between activations on one set of ``n_tokens``
        tokens (:func:`attention_multiply_adds`): no weight takes part in
        them, so sparse weights do not reduce them; read by
        :func:`~solvers_common.metrics.flops_ratio`."""
        return attention_multiply_adds(n_tokens, self.width, self.heads)

    def subspace_bases(self):
        """The bases ``U_k``, stacked: shape ``(heads, width, width / heads)``."""
        width = self.projection.weight.shape[1]
        return self.projection.weight.view(self.heads, width // self.heads, width).transpose(1, 2)

    def forward(self, tokens, return_attention=False):
        projected = _split_heads(self.projection(tokens), self.heads)  # U_k^T z
        mixed, attention = scaled_dot_product_attention(projected, projected, projected,
                                                        return_attention)
        return self.output(_merge_heads(mixed)), attention


class Dictionary(nn.Linear):
    """A dictionary ``D`` of ``code_size`` atoms in ``signal_size``
    dimensions, stored as ``weight`` of shape ``(signal_size, code_size)``:
    ``dictionary(codes)`` is ``D a`` and ``dictionary(signals,
    transpose=True)`` is ``D^T x`` (row vectors). Both uses go through the
    module's call, so forward hooks (multiply-add counts) see each; being a
    linear layer, it is counted and regularized as one by sparse training."""

    def __init__(self, signal_size, code_size):
        super().__init__(code_size, signal_size, bias=False)

    def forward(self, input, transpose=False):
        return F.linear(input, self.weight.t() if transpose else self.weight)


class ISTABlock(nn.Module):
    """CRATE's sparse coding block (Yu et al., NeurIPS 2023, section 2.4):
    one proximal-gradient step of the non-negative Lasso
    ``min_{A >= 0} 1/2 ||Z - D A||_F^2 + lmbd ||A||_1`` from ``A = Z``,

        ISTA(Z | D) = ReLU(Z + eta D^T (Z - D Z) - eta lmbd),

    with a square dictionary ``D`` (``width x width``)."""

    def __init__(self, width, eta=0.1, lmbd=0.1):
        super().__init__()
        check_ista_parameters(eta, lmbd)
        self.eta, self.lmbd = float(eta), float(lmbd)
        self.dictionary = Dictionary(width, width)

    def forward(self, tokens):
        # D^T (Z - D Z): two products, against three for D^T Z - D^T D Z.
        correction = self.dictionary(tokens - self.dictionary(tokens), transpose=True)
        return F.relu(tokens + self.eta * correction - self.eta * self.lmbd)


class OvercompleteISTABlock(nn.Module):
    """CRATE-alpha's overcomplete dictionary learning (ODL) block (Yang et
    al., NeurIPS 2024: overcomplete dictionary, decoupled decoding dictionary;
    the residual connection is the layer's): two ISTA steps of the
    non-negative Lasso on an overcomplete dictionary ``D``
    (``width x ratio * width``) from ``A_0 = 0``,

        A_1 = ReLU(eta D^T Z - eta lmbd),
        A_2 = ReLU(A_1 - eta D^T (D A_1 - Z) - eta lmbd),

    decoded by a separate dictionary ``D_hat`` of the same shape:
    the block returns ``(D_hat A_2, A_2)``; the layer adds ``D_hat A_2`` to
    its input."""

    def __init__(self, width, eta=0.1, lmbd=0.1, ratio=OVERCOMPLETE_RATIO):
        super().__init__()
        check_ista_parameters(eta, lmbd)
        _check_positive_integer("ratio", ratio)
        self.eta, self.lmbd = float(eta), float(lmbd)
        self.dictionary = Dictionary(width, ratio * width)
        self.decoder = Dictionary(width, ratio * width)

    def code(self, tokens):
        threshold = self.eta * self.lmbd
        first = F.relu(self.eta * self.dictionary(tokens, transpose=True) - threshold)
        gradient = self.dictionary(self.dictionary(first) - tokens, transpose=True)
        return F.relu(first - self.eta * gradient - threshold)

    def forward(self, tokens):
        code = self.code(tokens)
        return self.decoder(code), code


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


class ViTLayer(nn.Module):
    """Dosovitskiy et al. (ICLR 2021), eqs. 2-3:
    ``z' = MSA(LN(z)) + z``, ``z_next = MLP(LN(z')) + z'``, the MLP being
    ``Linear(width, 4 width)``, GELU, ``Linear(4 width, width)``."""

    def __init__(self, width, heads):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = MultiHeadSelfAttention(width, heads)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, MLP_RATIO * width), nn.GELU(),
                                 nn.Linear(MLP_RATIO * width, width))

    def step(self, tokens, inspect=False):
        """``(Z^{l+1}, LayerState or None)``."""
        normed = self.attention_norm(tokens)
        mixed, attention = self.attention(normed, return_attention=inspect)
        tokens = tokens + mixed
        tokens = tokens + self.mlp(self.mlp_norm(tokens))
        return tokens, LayerState(normed, attention, tokens) if inspect else None

    def forward(self, tokens):
        return self.step(tokens)[0]


class CRATELayer(nn.Module):
    """Yu et al. (NeurIPS 2023), section 2.5 (the overall CRATE
    architecture, as in the authors' code): ``Z^{l+1/2} = MSSA(LN(Z^l)) + Z^l``, then
    ``Z^{l+1} = ISTA(LN(Z^{l+1/2}))``, with no residual connection around
    the ISTA block (its output is the sparse code)."""

    def __init__(self, width, heads, eta=0.1, lmbd=0.1):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = MultiHeadSubspaceSelfAttention(width, heads)
        self.ista_norm = nn.LayerNorm(width)
        self.ista = ISTABlock(width, eta, lmbd)

    def step(self, tokens, inspect=False):
        normed = self.attention_norm(tokens)
        mixed, attention = self.attention(normed, return_attention=inspect)
        tokens = self.ista(self.ista_norm(tokens + mixed))
        return tokens, LayerState(normed, attention, tokens) if inspect else None

    def forward(self, tokens):
        return self.step(tokens)[0]


class CRATEAlphaLayer(nn.Module):
    """Yang et al. (NeurIPS 2024): the CRATE layer with the overcomplete
    ISTA block and a residual connection around it:
    ``Z^{l+1/2} = MSSA(LN(Z^l)) + Z^l``,
    ``Z^{l+1} = Z^{l+1/2} + D_hat A_2(LN(Z^{l+1/2}))``."""

    def __init__(self, width, heads, eta=0.1, lmbd=0.1):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = MultiHeadSubspaceSelfAttention(width, heads)
        self.ista_norm = nn.LayerNorm(width)
        self.ista = OvercompleteISTABlock(width, eta, lmbd)

    def step(self, tokens, inspect=False):
        normed = self.attention_norm(tokens)
        mixed, attention = self.attention(normed, return_attention=inspect)
        tokens = tokens + mixed
        decoded, code = self.ista(self.ista_norm(tokens))
        tokens = tokens + decoded
        return tokens, LayerState(normed, attention, code) if inspect else None

    def forward(self, tokens):
        return self.step(tokens)[0]


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class VisionTransformer(nn.Module):
    """The vision transformer of Dosovitskiy et al., "An image is worth 16x16
    words: transformers for image recognition at scale", ICLR 2021, eqs. 1-4:
    patch embedding with class token and position embeddings (eq. 1), ``depth``
    pre-LayerNorm layers of multi-head self-attention and MLP (eqs. 2-3),
    logits ``Linear(LN(z_L^0))`` of the class token (eq. 4).

    Parameters
    ----------
    input_shape : (channels, height, width) of the images
    n_classes : int
    width, depth, heads, patch_size : int
        Token dimension ``d``, number of layers, attention heads (``heads``
        must divide ``width``) and side of the square patches (it must divide
        the image's sides).

    Draw its parameters from a seeded generator with
    :func:`~solvers_common.models.sparse_initialization_`: weights of
    standard deviation ``weight_init_std = 0.02`` (ViT's reference
    implementations), zero biases, layer normalizations at identity.
    """

    # Read by sparse_initialization_: weights N(0, 0.02^2), biases zero.
    weight_init_std = WEIGHT_INIT_STD

    def __init__(self, input_shape, n_classes, width=DEFAULT_WIDTH, depth=DEFAULT_DEPTH,
                 heads=DEFAULT_HEADS, patch_size=None):
        super().__init__()
        if patch_size is None:
            patch_size = default_patch_size(*input_shape[1:])
        check_transformer_sizes(input_shape, width, depth, heads, patch_size)
        self.width, self.depth, self.heads = width, depth, heads
        self.embedding = PatchEmbedding(input_shape, width, patch_size)
        self.layers = nn.ModuleList(self.make_layer() for _ in range(depth))
        self.head_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_classes)

    def make_layer(self):
        return ViTLayer(self.width, self.heads)

    @property
    def grid_shape(self):
        """Patches along the image's height and width."""
        return self.embedding.grid_shape

    def forward(self, images):
        tokens = self.embedding(images)
        for layer in self.layers:
            tokens = layer(tokens)
        return self.head(self.head_norm(tokens[:, 0]))

    def inspect(self, images):
        """``(logits, states)``: the logits of :meth:`forward` and one
        :class:`LayerState` per layer (attention weights computed
        explicitly)."""
        tokens = self.embedding(images)
        states = []
        for layer in self.layers:
            tokens, state = layer.step(tokens, inspect=True)
            states.append(state)
        return self.head(self.head_norm(tokens[:, 0])), states


class CRATE(VisionTransformer):
    """CRATE, the coding-rate reduction transformer of Yu, Buchanan, Pai,
    Chu, Wu, Tong, Haeffele & Ma, "White-box transformers via sparse rate
    reduction", NeurIPS 2023: ViT's embedding and head around ``depth``
    layers, each an alternating step on the sparse rate reduction
    ``R(Z) - R^c(Z | U) - lmbd ||Z||_0`` (their section 2):

        Z^{l+1/2} = Z^l + MSSA(LN(Z^l) | U^l)     (compression, section 2.3)
        Z^{l+1}   = ISTA(LN(Z^{l+1/2}) | D^l)     (sparsification, section 2.4)

    with ``MSSA`` of :class:`MultiHeadSubspaceSelfAttention` and ``ISTA`` of
    :class:`ISTABlock` (step size ``eta``, sparsity weight ``lmbd``, both 0.1
    as in the paper). A layer holds ``3 width^2 + 5 width`` parameters against
    ``12 width^2 + 13 width`` for ViT's."""

    def __init__(self, input_shape, n_classes, width=DEFAULT_WIDTH, depth=DEFAULT_DEPTH,
                 heads=DEFAULT_HEADS, patch_size=None, eta=0.1, lmbd=0.1):
        check_ista_parameters(eta, lmbd)
        self.eta, self.lmbd = eta, lmbd
        super().__init__(input_shape, n_classes, width, depth, heads, patch_size)

    def make_layer(self):
        return CRATELayer(self.width, self.heads, self.eta, self.lmbd)


class CRATEAlpha(CRATE):
    """CRATE-alpha of Yang, Li, Pai, Zhou, Ma, Yu & Xie, "Scaling white-box
    transformers for vision", NeurIPS 2024: CRATE whose sparse coding block
    is :class:`OvercompleteISTABlock` (dictionary of ``4 width`` atoms, two
    ISTA steps from zero, a separate decoding dictionary) with a residual
    connection around it (:class:`CRATEAlphaLayer`). A layer holds
    ``10 width^2 + 5 width`` parameters."""

    def make_layer(self):
        return CRATEAlphaLayer(self.width, self.heads, self.eta, self.lmbd)


TRANSFORMER_CLASSES = {"vit": VisionTransformer, "crate": CRATE, "crate_alpha": CRATEAlpha}
