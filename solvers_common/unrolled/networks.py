"""Unrolled sparse-coding networks.

Every network maps a batch of signals ``x`` (shape ``(N, n)``) to its
``n_layers + 1`` iterates ``z_0 = 0, z_1, ..., z_L`` stacked in a tensor of
shape ``(L + 1, N, m)``. A layer is one (learned) proximal-gradient step

    z_{l+1} = ST(A^l z_l + B^l x, theta^l),

the networks differ by how ``A^l``, ``B^l`` and ``theta^l`` are parametrized.

Past its trained depth (``forward(x, extra_layers=k)``) a network runs ``k``
more layers, as its ``continuation`` says: ISTA and FISTA keep iterating,
a weight-tied network repeats its layer, an untied one repeats its last
layer (a choice: nothing was trained for those layers).
"""
import math
import numbers

import torch
from torch import nn

from ..lasso import lipschitz_constant
from ..prox import soft_threshold

INITIALIZATIONS = ("ista", "random")


def check_network_parameters(D, lmbd, n_layers):
    if n_layers < 1:
        raise ValueError(f"n_layers must be an integer >= 1, got {n_layers}.")
    if D.ndim != 2:
        raise ValueError(f"D must be a matrix of shape (n, m), got shape {tuple(D.shape)}.")
    if not lmbd > 0:
        raise ValueError(f"lmbd must be positive, got {lmbd}.")


class UnrolledNetwork(nn.Module):
    """Base class: runs the layers and stacks the iterates.

    A subclass defines its layers through three methods:

    - ``prepare(x)``: what all layers of one forward pass share (the products
      with ``x``, per-layer views of the weights), passed to the other two;
    - ``preactivation(index, z, z_previous, prepared)``: the argument of the
      soft-thresholding of layer ``index`` (0-based), computed from the
      current and previous iterates; at ``index = 0`` both are ``z_0 = 0``,
      so a network may skip its products with them;
    - ``thresholds(prepared)``: the ``L`` thresholds, one per layer.

    Layer ``l`` is then ``z_{l+1} = ST(preactivation(l, z_l, z_{l-1}), theta_l)``,
    where ``ST`` is ``activation(l, u, theta_l)``, the soft-thresholding
    unless a subclass replaces it (ALISTA's support selection).
    ``input_size``, the signals' dimension ``n``, is checked on every input
    when given.

    Past the trained depth, layer ``index >= n_layers`` runs as layer
    ``continued_layer(index)``: by default ``-1``, Python's index of the last
    layer (negative, so that no network mistakes it for the first layer,
    whose input is ``z_0 = 0``). ``continuation`` says in words how the
    network continues; a subclass that cannot continue sets it to None.
    ``fixed_point_map`` is True when every layer is one map ``z -> ST(
    preactivation(-1, z, z), thresholds[-1])`` that does not depend on
    ``z_{l-1}`` nor on the layer (ISTA, a weight-tied network with one
    threshold): such a network has a fixed point, which implicit training
    (:mod:`solvers_common.unrolled.implicit`) differentiates.
    """

    continuation = "repeats its last layer"
    fixed_point_map = False

    def __init__(self, n_layers, n_atoms, input_size=None):
        super().__init__()
        self.n_layers = int(n_layers)
        self.n_atoms = int(n_atoms)
        self.input_size = None if input_size is None else int(input_size)

    def prepare(self, x):
        return x

    def preactivation(self, index, z, z_previous, prepared):
        raise NotImplementedError

    def thresholds(self, prepared):
        raise NotImplementedError

    def activation(self, index, u, threshold, out=None):
        """The nonlinearity of layer ``index`` applied to its preactivation
        ``u``: ``soft_threshold(u, threshold)``, written into ``out`` when
        given (forward passes without autograd)."""
        if out is None:
            return soft_threshold(u, threshold)
        return _soft_threshold_into(out, u, threshold)

    def continued_layer(self, index):
        """The layer that runs as layer ``index >= n_layers``."""
        return -1

    def _needs_grad(self, x):
        return torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters()))

    def _layers(self, extra_layers):
        """The layer run at each depth ``0 .. L + extra_layers - 1``."""
        if (isinstance(extra_layers, bool) or int(extra_layers) != extra_layers
                or extra_layers < 0):
            raise ValueError(f"extra_layers must be an integer >= 0, got {extra_layers!r}.")
        if extra_layers and self.continuation is None:
            raise ValueError(f"extra_layers={extra_layers}: {type(self).__qualname__} "
                             "cannot run past its trained depth (continuation = None).")
        return list(range(self.n_layers)) + [
            self.continued_layer(index)
            for index in range(self.n_layers, self.n_layers + int(extra_layers))]

    def forward(self, x, iterate_noise=None, extra_layers=0):
        """Iterates of the network on the signals ``x``, shape ``(L+1, N, m)``.

        ``iterate_noise(l, z_l)``, when given, returns the iterate that the
        next layer receives (and that is reported) in place of ``z_l``; it
        injects perturbations (training noise, robustness tests).
        ``extra_layers = k`` runs ``k`` layers past the trained depth (see
        ``continued_layer``): the iterates then have shape ``(L+k+1, N, m)``,
        and the first ``L + 1`` are those of ``extra_layers = 0``.
        """
        if self.input_size is not None and x.shape[-1] != self.input_size:
            raise ValueError(
                f"x has dimension {x.shape[-1]} but the network expects signals "
                f"of dimension {self.input_size}."
            )
        layers = self._layers(extra_layers)
        prepared = self.prepare(x)
        thresholds = self.thresholds(prepared)
        if self._needs_grad(x):
            z = z_previous = x.new_zeros(x.shape[0], self.n_atoms)
            iterates = [z]
            for index, layer in enumerate(layers):
                u = self.preactivation(layer, z, z_previous, prepared)
                z_previous, z = z, self.activation(layer, u, thresholds[layer])
                if index == 0 and z.dtype != z_previous.dtype:
                    # under autocast the layers compute in bfloat16: so does z_0
                    iterates[0] = z_previous = z_previous.to(z.dtype)
                if iterate_noise is not None:
                    z = iterate_noise(index + 1, z)
                iterates.append(z)
            return torch.stack(iterates)
        # Without autograd, each iterate is written into its slice of the
        # output: a final stack would copy them all once more, which costs
        # as much as a layer's soft-thresholding when N m is large.
        iterates = x.new_empty(len(layers) + 1, x.shape[0], self.n_atoms)
        z = z_previous = iterates[0].zero_()
        for index, layer in enumerate(layers):
            u = self.preactivation(layer, z, z_previous, prepared)
            out = self.activation(layer, u, thresholds[layer], out=iterates[index + 1])
            z_previous, z = z, out
            if iterate_noise is not None:
                perturbed = iterate_noise(index + 1, out)
                if perturbed is not out:
                    z = out.copy_(perturbed)
        return iterates


def _soft_threshold_into(out, u, threshold):
    """:func:`soft_threshold` of ``u`` written into ``out``, without
    autograd: one ``softshrink`` kernel when the threshold is a finite
    non-negative scalar, with the same values (``u - t`` above ``t``,
    ``u + t`` below ``-t``, 0 between; rounding is symmetric in the sign).
    Reading the threshold waits for the device once per layer, which only
    evaluation passes pay."""
    if not torch.is_tensor(threshold) or threshold.numel() == 1:
        scalar = float(threshold)
        # (an infinite threshold, from a diverged network, takes the formula,
        # whose inf - inf gives NaN where softshrink would give 0)
        if 0 <= scalar < math.inf:
            return torch.ops.aten.softshrink.out(u, scalar, out=out)
    return out.copy_(soft_threshold(u, threshold))


class _Repeated:
    """The same threshold at every layer index, past the trained depth too."""

    def __init__(self, value):
        self.value = value

    def __getitem__(self, index):
        return self.value


class ISTA(UnrolledNetwork):
    """ISTA (Daubechies, Defrise & De Mol 2004) unrolled for ``n_layers``
    iterations with step ``1 / L_D``, ``L_D = ||D||_2^2``:
    ``z_{l+1} = ST((I - D^T D / L_D) z_l + D^T x / L_D, lmbd / L_D)``.
    No learnable parameters; past ``n_layers`` it keeps iterating."""

    continuation = "iterates ISTA"
    fixed_point_map = True

    def __init__(self, D, lmbd, n_layers):
        check_network_parameters(D, lmbd, n_layers)
        super().__init__(n_layers, D.shape[1])
        step = 1.0 / lipschitz_constant(D)
        eye = torch.eye(D.shape[1], dtype=D.dtype, device=D.device)
        self.input_size = D.shape[0]
        self.register_buffer("W_z", eye - step * D.T @ D)
        self.register_buffer("W_x", step * D.T)
        self.register_buffer("threshold", step * lmbd)

    def prepare(self, x):
        return x @ self.W_x.T

    def preactivation(self, index, z, z_previous, terms):
        if index == 0:  # W_z z_0 = 0
            return terms
        return torch.addmm(terms, z, self.W_z.T)

    def continued_layer(self, index):
        return index

    def thresholds(self, prepared):
        return _Repeated(self.threshold)


class FISTA(ISTA):
    """FISTA (Beck & Teboulle 2009, eq. (4.1)-(4.3)) unrolled: the ISTA step
    is taken at ``y_l = z_l + (t_{l-1} - 1) / t_l (z_l - z_{l-1})``; past
    ``n_layers`` it keeps iterating (``t_l`` goes on)."""

    continuation = "iterates FISTA"
    fixed_point_map = False

    def __init__(self, D, lmbd, n_layers):
        super().__init__(D, lmbd, n_layers)
        self._t = [1.0]

    def momentum(self, index):
        """``(t_{l-1} - 1) / t_l`` of layer ``index = l`` (0 at ``l = 0``)."""
        while len(self._t) <= index:
            self._t.append((1 + (1 + 4 * self._t[-1] ** 2) ** 0.5) / 2)
        return (self._t[index - 1] - 1) / self._t[index] if index > 0 else 0.0

    def preactivation(self, index, z, z_previous, terms):
        if index == 0:  # y_0 = z_0 = 0
            return terms
        # y = z + momentum (z - z_previous), in one kernel
        y = torch.lerp(z, z_previous, -self.momentum(index))
        return super().preactivation(index, y, None, terms)


class LISTA(ISTA):
    """LISTA (Gregor & LeCun 2010) with untied layers:
    ``z_{l+1} = ST(W_z^l z_l + W_x^l x, theta^l)``.

    ``init="ista"`` starts from ISTA's weights (Ablin et al. 2019), so the
    untrained network equals ISTA; ``init="random"`` draws small Gaussian
    weights (standard deviation ``random_scale``) as the code of Hadou et
    al. (2024). Past ``n_layers`` it repeats its last layer.
    """

    continuation = UnrolledNetwork.continuation
    continued_layer = UnrolledNetwork.continued_layer
    fixed_point_map = False
    _weight_shapes = "per_layer"

    def __init__(self, D, lmbd, n_layers, init="ista", random_scale=1e-2,
                 generator=None):
        if init not in INITIALIZATIONS:
            raise ValueError(f"init={init!r} is unknown; accepted: {list(INITIALIZATIONS)}.")
        super().__init__(D, lmbd, n_layers)
        n, m = D.shape
        n_weights = n_layers if self._weight_shapes == "per_layer" else 1
        n_thresholds = n_layers if self._threshold_shape() == "per_layer" else 1
        if init == "ista":
            W_z = self.W_z.expand(n_weights, m, m).clone()
            W_x = self.W_x.expand(n_weights, m, n).clone()
            threshold = self.threshold.expand(n_thresholds).clone()
        else:
            def draw(*shape):
                return random_scale * torch.randn(
                    *shape, generator=generator, dtype=D.dtype, device=D.device)
            W_z, W_x = draw(n_weights, m, m), draw(n_weights, m, n)
            threshold = draw(n_thresholds)
        del self.W_z, self.W_x, self.threshold
        if self._weight_shapes != "per_layer":
            W_z, W_x = W_z[0], W_x[0]
        self.W_z = nn.Parameter(W_z)
        self.W_x = nn.Parameter(W_x)
        self.threshold = nn.Parameter(threshold)

    def _threshold_shape(self):
        return "per_layer"

    def prepare(self, x):
        # One product for all layers, (N, n) @ (n, L m), split per layer.
        # The per-layer views are taken once: their gradients are gathered by
        # one stack in the backward pass, where indexing in every layer would
        # add up L zero-padded copies of the whole weight tensor (measured at
        # n = 1024, m = 1228: about 600 instead of 900 signals/s in training).
        L, m, n = self.W_x.shape
        terms = (x @ self.W_x.reshape(L * m, n).T).reshape(x.shape[0], L, m)
        return terms.unbind(1), self.W_z.unbind(0)

    def preactivation(self, index, z, z_previous, prepared):
        terms, W_z = prepared
        if index == 0:  # W_z^0 z_0 = 0
            return terms[0]
        return torch.addmm(terms[index], z, W_z[index].T)

    def thresholds(self, prepared):
        return self.threshold.unbind(0)


THRESHOLDS = ("shared", "per_layer")


class LISTATied(LISTA):
    """Weight-tied LISTA: one ``W_z`` and one ``W_x`` for all layers,
    ``z_{l+1} = ST(W_z z_l + W_x x, theta^l)`` (the recurrent form of
    Gregor & LeCun 2010, eq. (3)), with one threshold for all layers
    (``thresholds="shared"``: the network iterates one map, whose fixed point
    implicit training differentiates) or one per layer (``"per_layer"``).
    Initialized as LISTA (``init``). Past ``n_layers`` it repeats its layer
    (with its last threshold when they are per layer)."""

    continuation = "repeats its layer"
    _weight_shapes = "tied"

    def __init__(self, D, lmbd, n_layers, thresholds="shared", init="ista",
                 random_scale=1e-2, generator=None):
        if thresholds not in THRESHOLDS:
            raise ValueError(f"thresholds={thresholds!r} is unknown; "
                             f"accepted: {list(THRESHOLDS)}.")
        self._thresholds = thresholds
        super().__init__(D, lmbd, n_layers, init=init, random_scale=random_scale,
                         generator=generator)
        self.fixed_point_map = thresholds == "shared"

    def _threshold_shape(self):
        return self._thresholds

    # ISTA's layer, with the learned W_z, W_x.
    prepare = ISTA.prepare
    preactivation = ISTA.preactivation

    def thresholds(self, prepared):
        if self._thresholds == "shared":
            return _Repeated(self.threshold[0])
        return self.threshold.unbind(0)


class _ResidualNetwork(UnrolledNetwork):
    """Layers of the form ``ST(z - W_l^T (D z - x), theta_l)`` with ``W_l``
    of the shape of ``D`` (the layer's step folded in); the signals are rows,
    so the layer computes ``z - (z D^T - x) W_l``."""

    def __init__(self, D, lmbd, n_layers):
        check_network_parameters(D, lmbd, n_layers)
        super().__init__(n_layers, D.shape[1])
        self.input_size = D.shape[0]
        self.register_buffer("D", D.clone())
        self.lipschitz = float(lipschitz_constant(D))

    def layer_matrices(self):
        """The ``L`` matrices ``W_l`` of shape ``(n, m)``, steps included."""
        raise NotImplementedError

    def prepare(self, x):
        return x, -x, self.layer_matrices()

    def preactivation(self, index, z, z_previous, prepared):
        x, minus_x, W = prepared
        if index == 0:  # z_0 - (z_0 D^T - x) W_0 = x W_0
            return x @ W[0]
        # z - (z D^T - x) W_l, as two fused multiply-adds
        return torch.addmm(z, torch.addmm(minus_x, z, self.D.T), W[index], alpha=-1)


class LISTACP(_ResidualNetwork):
    """LISTA-CP (Chen, Liu, Wang & Yin 2018, eq. (13)), coupled weights:
    ``z_{l+1} = ST(z_l - (W^l)^T (D z_l - x), theta^l)``, initialized at ISTA
    (``W^l = D / L_D``, ``theta^l = lmbd / L_D``)."""

    def __init__(self, D, lmbd, n_layers):
        super().__init__(D, lmbd, n_layers)
        self.W = nn.Parameter((D / self.lipschitz).expand(n_layers, *D.shape).clone())
        self.threshold = nn.Parameter(
            torch.full((n_layers,), lmbd / self.lipschitz, dtype=D.dtype, device=D.device))

    def layer_matrices(self):
        return self.W.unbind(0)

    def thresholds(self, prepared):
        return self.threshold.unbind(0)


def analytic_weight_matrix(D):
    """ALISTA's analytic weight matrix (Liu, Chen, Wang & Yin 2019, eq. (17)):
    ``W = argmin ||W^T D||_F^2`` subject to ``w_i^T d_i = 1`` for every atom.

    Each column solves ``min w^T (D D^T) w`` s.t. ``d_i^T w = 1``, whose
    solution is ``w_i = G^+ d_i / (d_i^T G^+ d_i)`` with ``G = D D^T``.
    """
    D64 = D.to(torch.float64)
    G_inverse_D = torch.linalg.pinv(D64 @ D64.T, hermitian=True) @ D64
    W = G_inverse_D / (D64 * G_inverse_D).sum(0, keepdim=True)
    return W.to(D.dtype)


def check_support_selection(support_selection, support_percent, support_max_percent):
    """ValueError unless ``support_selection`` is a boolean and both percents
    are numbers in [0, 100]."""
    if not isinstance(support_selection, bool):
        raise ValueError(f"support_selection must be True or False, got {support_selection!r}.")
    for name, value in (("support_percent", support_percent),
                        ("support_max_percent", support_max_percent)):
        if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                or not 0 <= value <= 100):
            raise ValueError(f"{name} must be a number in [0, 100] (a percentage of the "
                             f"atoms), got {value!r}.")


def support_percents(n_layers, support_percent, support_max_percent):
    """The percentage ``p^l = min(l p, p_max)`` of entries that layer
    ``l = 1 .. L`` keeps without shrinkage (Chen, Liu, Wang & Yin 2018,
    Sec. 3.2: the selected support grows linearly with the depth, up to a
    cap)."""
    return tuple(min(layer * support_percent, support_max_percent)
                 for layer in range(1, n_layers + 1))


def support_size(percent, n_atoms):
    """How many of ``n_atoms`` entries make up ``percent`` %: the rank of the
    authors' nearest-rank percentile, ``round((m - 1) p / 100)``, so that
    the counts are those of their code (6 of 500 at 1.2 %, 3 of 256)."""
    return int(round((n_atoms - 1) * percent / 100))


def support_selection_threshold(u, threshold, n_kept):
    """The soft-thresholding with support selection of Chen, Liu, Wang & Yin
    (2018, eq. (13)) used by ALISTA (Liu et al. 2019, eq. (16)): the entries
    of ``u`` among the ``n_kept`` largest in magnitude of their row *and*
    above the threshold pass unchanged, the others are soft-thresholded.

    The selection is a mask without gradient (the authors stop it), so the
    map stays differentiable in ``u`` and ``threshold`` wherever the
    selection does not change."""
    if n_kept == 0:
        return soft_threshold(u, threshold)
    magnitude = u.detach().abs()
    largest = magnitude.topk(min(n_kept, u.shape[-1]), dim=-1).indices
    kept = torch.zeros_like(magnitude, dtype=torch.bool).scatter_(-1, largest, True)
    kept &= magnitude > threshold
    return torch.where(kept, u, soft_threshold(u, threshold))


class ALISTA(_ResidualNetwork):
    """ALISTA (Liu, Chen, Wang & Yin 2019, "ALISTA: Analytic weights are as
    good as learned weights in LISTA", ICLR, eq. (16)): the analytic weight
    matrix ``W`` of :func:`analytic_weight_matrix` is fixed, only a step
    ``gamma^l`` and a threshold ``theta^l`` per layer are learned:
    ``z_{l+1} = eta(z_l - gamma^l W^T (D z_l - x), theta^l)``.
    Initialized at ``gamma^l = 1 / ||W^T D||_2`` (ISTA's step when W = D) and
    ``theta^l = gamma^l lmbd``.

    ``eta`` is the soft-thresholding, or with ``support_selection=True`` the
    thresholding with support selection of the paper's eq. (16) (Chen, Liu,
    Wang & Yin 2018, "Theoretical linear convergence of unfolded ISTA and its
    practical weights and thresholds", NeurIPS, eq. (13)): at layer ``l = 1
    .. L`` the entries among the ``p^l = min(l p, p_max)`` percent largest in
    magnitude of each signal's preactivation, when above ``theta^l``, skip
    the shrinkage (:func:`support_selection_threshold`). ``p =
    support_percent`` and ``p_max = support_max_percent``; the authors run
    their 16-layer networks at ``p = 1.2``, ``p_max = 13``. The entries
    counted are :func:`support_size`'s. Past ``n_layers`` the network repeats
    its last layer, selection included. Off by default here, so that the
    untrained network is the plain proximal-gradient step."""

    def __init__(self, D, lmbd, n_layers, support_selection=False, support_percent=1.2,
                 support_max_percent=13.0):
        check_support_selection(support_selection, support_percent, support_max_percent)
        super().__init__(D, lmbd, n_layers)
        self.support_selection = support_selection
        percents = (support_percents(n_layers, support_percent, support_max_percent)
                    if support_selection else (0.0,) * n_layers)
        self.support_sizes = tuple(support_size(p, D.shape[1]) for p in percents)
        W = analytic_weight_matrix(D)
        self.register_buffer("W", W)
        step = 1.0 / torch.linalg.matrix_norm(W.T @ D, ord=2)
        self.step = nn.Parameter(step.expand(n_layers).clone())
        self.threshold = nn.Parameter((step * lmbd).expand(n_layers).clone())

    def layer_matrices(self):
        return (self.step[:, None, None] * self.W).unbind(0)

    def thresholds(self, prepared):
        return self.threshold.unbind(0)

    def activation(self, index, u, threshold, out=None):
        n_kept = self.support_sizes[index]
        if n_kept == 0:
            return super().activation(index, u, threshold, out=out)
        z = support_selection_threshold(u, threshold, n_kept)
        return z if out is None else out.copy_(z)


class SLISTA(_ResidualNetwork):
    """SLISTA (Ablin, Moreau, Massias & Gramfort 2019, Sec. 3): ISTA with a
    learned step per layer, ``z_{l+1} = ST(z_l - a^l D^T (D z_l - x),
    a^l lmbd)``, initialized at ``a^l = 1 / L_D``."""

    def __init__(self, D, lmbd, n_layers):
        super().__init__(D, lmbd, n_layers)
        self.lmbd = float(lmbd)
        self.step = nn.Parameter(
            torch.full((n_layers,), 1 / self.lipschitz, dtype=D.dtype, device=D.device))

    def layer_matrices(self):
        return (self.step[:, None, None] * self.D).unbind(0)

    def thresholds(self, prepared):
        return (self.step * self.lmbd).unbind(0)
