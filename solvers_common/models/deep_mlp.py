"""A deep fully connected ReLU network of constant width with optional
learnable scalar skip connections: the network whose architecture Bungert,
Roith, Tenbrinck & Burger ("A Bregman learning framework for sparse neural
networks", JMLR 2022, the denoising autoencoder experiment) let row-group
sparsity choose, there with six layers of 784 neurons on MNIST."""
import numbers

import torch
from torch import nn


def _check_positive_integer(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1.")


class ScalarSkips(nn.Module):
    """One learnable scalar per earlier representation that a layer adds to
    its output: ``sum_j scales[k] * x_{sources[k]}``. The scalars start at
    zero (no skip), drawn by :meth:`initialize_own_parameters_`, which
    :func:`~solvers_common.models.sparse_initialization_` calls."""

    def __init__(self, sources):
        super().__init__()
        self.sources = tuple(sources)
        self.scales = nn.Parameter(torch.zeros(len(self.sources)))

    @torch.no_grad()
    def initialize_own_parameters_(self, generator):
        self.scales.zero_()

    def forward(self, representations):
        return sum(scale * representations[source]
                   for scale, source in zip(self.scales, self.sources))


class DeepMLP(nn.Module):
    """``depth`` hidden layers of ``width`` ReLU neurons on the flattened
    image ``x_0``, then a linear output layer of ``n_outputs`` (logits of a
    classifier, or the pixels of a denoised image):

        x_k = ReLU(W_k x_{k-1} + b_k) [+ sum_{j < k} s_{k,j} x_j],  k = 1..depth,
        y   = W_{depth+1} x_depth + b_{depth+1} [+ sum_{j <= depth} s_{depth+1,j} x_j].

    With ``skip_connections=True`` each layer adds a learnable scalar multiple of every
    earlier representation of its own size (the input included, and its
    own input: a residual connection), as the "fully skip connected" network
    of the authors' notebook; the scalars start at zero. When the width, the
    input size and the output size are all equal (the authors' autoencoder,
    784 everywhere), layer ``k`` has ``k`` scalars, ``L (L + 1) / 2`` in all
    for ``L = depth + 1`` layers.

    Unlike the authors' network, the output layer has no ReLU (it also
    serves as a classifier) and the input is not normalized inside the
    network.
    """

    def __init__(self, input_size, n_outputs, width, depth=5, skip_connections=False):
        super().__init__()
        _check_positive_integer("width", width)
        _check_positive_integer("depth", depth)
        if not isinstance(skip_connections, bool):
            raise ValueError(f"skip_connections={skip_connections!r} must be True or False.")
        self.flatten = nn.Flatten()
        sizes = [input_size] + [width] * depth + [n_outputs]
        self.linears = nn.ModuleList(nn.Linear(size_in, size_out)
                                     for size_in, size_out in zip(sizes[:-1], sizes[1:]))
        self.skips = None
        if skip_connections:
            # Layer k (0-based) writes representation k + 1 and may read
            # every representation j <= k of its output size.
            self.skips = nn.ModuleList(
                ScalarSkips([j for j in range(k + 1) if sizes[j] == sizes[k + 1]])
                for k in range(len(self.linears)))

    def forward(self, x):
        representations = [self.flatten(x)]
        last = len(self.linears) - 1
        for k, linear in enumerate(self.linears):
            out = linear(representations[-1])
            if k < last:
                out = torch.relu(out)
            if self.skips is not None and self.skips[k].sources:
                out = out + self.skips[k](representations)
            representations.append(out)
        return representations[-1]
