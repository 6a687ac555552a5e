"""Unrolled sparse coding: an L-layer network z_0 = 0 -> ... -> z_L that
approximates the Lasso solution of held-out test signals.

F_x(z) = 1/2 ||x - D z||^2 + lmbd ||z||_1, lmbd = lmbd_ratio * lmbd_max,
lmbd_max = max over training signals of ||D^T x||_inf.

Datasets hand over ``D``, ``X_train``, ``X_test`` and ``X_validation``, a
validation split disjoint from the other two: ``validation_gap``, the mean
gap at the trained depth on it (computed as ``value`` is on the test
signals), is what tuning selects on (``validation_metric``), so that the test
signals are never used for selection. The gap of the input ``z_0 = 0`` on the
test signals is ``gap_layer_0``.

Parameters: ``n_layers`` (L), ``lmbd_ratio``, and ``noise_levels``, the
noise levels sigma of the robustness metrics ``gap_input_noise_<sigma>`` and
``gap_iterate_noise_<sigma>``: one objective reports all of them. In a
config or on the command line, write them as one quoted string of
comma-separated numbers, ``-o "Unrolled sparse coding[noise_levels='0.1,1,10']"``;
a single number is one level (``noise_levels=0.1``), and an empty string none.
benchopt reads ``noise_levels=(0.1,1)`` or ``noise_levels=[0.1,1]`` as a grid
of two objectives with one level each, like any parameter list; in Python, a
tuple or list inside the grid's list is one objective's set of levels
(``{"noise_levels": [(0.1, 1.0)]}``). Each level must be a positive finite
number, without repetition.

``iterate_noise_layers`` says which iterates ``gap_iterate_noise_<sigma>``
perturbs: ``middle`` (default), the iterate of layer ``L // 2`` only, by
``sigma ||z_l|| / sqrt(m) xi``; ``every``, every intermediate iterate ``z_1 ..
z_{L-1}`` (as Hadou et al. 2024 perturb every layer's output), each by its own
draw ``sigma ||z*(x)|| / sqrt(m) xi_l``: relative to the test solution's
norm, the same at every layer (relative to each iterate's own norm the noise
would compound over the layers). The last iterate is never perturbed.

``extra_layers``, written the same way (``'0,10,40'``, non-negative
integers), are the numbers k of layers past the trained depth of the metrics
``gap_extra_layers_<k>`` (the test gap of z_{L+k}) and, for k >= 1,
``descent_rate_extra_layers_<k>`` (the fraction of the layers L+1 .. L+k, and
of the test signals, at which F does not go up): iteration overfitting
(Ramzi, Ablin, Peyré & Moreau 2023) and descent past the trained depth.
How a network continues is its own: ISTA and FISTA iterate, weight-tied
networks repeat their layer, untied ones their last layer (see
:mod:`solvers_common.unrolled.networks`).

The result of a solver is ``{"network": module}``, a ``torch.nn.Module`` whose
``module(x)`` maps signals ``(N, n)`` to the ``n_layers + 1`` iterates
``(n_layers + 1, N, m)``, ``z_0 = 0``. Every metric is computed for any such
module except two families that need a hook: ``gap_iterate_noise_<sigma>``
needs the module to perturb its own iterates, its ``forward`` must take
``iterate_noise``; the metrics past the trained depth (k >= 1) need its
``forward`` to take ``extra_layers`` (and its ``continuation`` not to be None).
:class:`solvers_common.unrolled.UnrolledNetwork` has both; for other modules
these metrics are NaN, with one warning per network class and family saying
why (``gap_extra_layers_0``, the gap at the trained depth, is always computed).
"""
import math
import warnings

import torch
from benchopt import BaseObjective
from torch import nn

from solvers_common.device import keep_freed_memory, to_cpu_float64
from solvers_common.lasso import (
    check_dictionary,
    lasso_objective,
    lmbd_max,
    solve_lasso_cached,
)
from solvers_common.optim.checks import check_integer, check_positive
from solvers_common.parameters import parse_extra_layers, parse_noise_levels
from solvers_common.seeding import torch_generator
from solvers_common.unrolled import ISTA
from solvers_common.unrolled.metrics import (
    accepts_iterate_noise,
    cannot_continue,
    every_layer_perturbation,
    extra_layer_metrics,
    iterate_perturbation,
    layer_metrics,
    perturb_signals,
)

ITERATE_NOISE_LAYERS = ("middle", "every")


class Objective(BaseObjective):
    name = "Unrolled sparse coding"
    # What the benchmark is judged on (reports rank solvers by it): the mean
    # test gap F_x(z_L) - F_x(z*) at the trained depth.
    primary_metric = {"name": "value", "better": "lower", "beside": ["nmse"]}
    # What tuning selects on (ci/tune.py reads this literal): the same gap on
    # the validation split.
    validation_metric = {"name": "validation_gap", "better": "lower"}
    url = "https://github.com/learnopt-bench/learnopt-bench"
    min_benchopt_version = "1.9"
    requirements = ["pip::torch", "pip::scikit-learn", "pip::numpy"]

    parameters = {
        "n_layers": [10],
        "lmbd_ratio": [0.1],
        # One string: a tuple here would be a grid of three objectives.
        "noise_levels": ["0.05,0.1,0.2"],
        "extra_layers": ["0,10,40"],
        "iterate_noise_layers": ["middle"],
    }
    test_config = {"objective": {"n_layers": 3}}

    def skip(self, unavailable=None, **data):
        # Datasets whose files are missing hand over a one-line message.
        if unavailable is not None:
            return True, unavailable
        return False, None

    def set_data(self, D, X_train, X_test, X_validation=None):
        if X_validation is None:
            raise ValueError(
                "the dataset gives no X_validation: this objective needs a validation split "
                "(signals disjoint from X_train and X_test, drawn from the dataset's seed), on "
                "which it reports validation_gap, the metric that tuning selects on.")
        check_positive("lmbd_ratio", self.lmbd_ratio)
        if self.lmbd_ratio >= 1:
            # From lmbd_max on, the Lasso solution is 0.
            raise ValueError(f"lmbd_ratio={self.lmbd_ratio!r} must be in (0, 1).")
        check_integer("n_layers", self.n_layers)
        if self.iterate_noise_layers not in ITERATE_NOISE_LAYERS:
            raise ValueError(f"iterate_noise_layers={self.iterate_noise_layers!r} is unknown; "
                             f"accepted: {list(ITERATE_NOISE_LAYERS)}.")
        # Parsed into its own attribute: benchopt forbids set_data to change
        # a parameter.
        self.sigmas = parse_noise_levels(self.noise_levels)
        self.extra_depths = parse_extra_layers(self.extra_layers)
        # Every solver of the run trains under the same allocator policy:
        # freed CPU memory is reused rather than returned and faulted in
        # again at the next step (see keep_freed_memory).
        keep_freed_memory()
        self.D = torch.as_tensor(D, dtype=torch.float64)
        self.X_train = torch.as_tensor(X_train, dtype=torch.float64)
        self.X_test = torch.as_tensor(X_test, dtype=torch.float64)
        check_dictionary(self.X_train, self.D)
        check_dictionary(self.X_test, self.D)
        self.X_validation = torch.as_tensor(X_validation, dtype=torch.float64)
        check_dictionary(self.X_validation, self.D)

        self.lmbd = float(self.lmbd_ratio * lmbd_max(self.X_train, self.D))
        # The references are computed once here, not at every evaluation.
        self.z_star_train, _ = solve_lasso_cached(self.X_train, self.D, self.lmbd)
        self.z_star_test, _ = solve_lasso_cached(self.X_test, self.D, self.lmbd)
        self.objective_star_test = lasso_objective(
            self.z_star_test, self.X_test, self.D, self.lmbd)
        z_star_validation, _ = solve_lasso_cached(self.X_validation, self.D, self.lmbd)
        self.objective_star_validation = lasso_objective(
            z_star_validation, self.X_validation, self.D, self.lmbd)

        generator = torch_generator(self.get_seed(use_repetition=True))
        self.noisy_test = {}
        for sigma in self.sigmas:
            noise = torch.randn(self.X_test.shape, generator=generator,
                                dtype=torch.float64)
            X_noisy = perturb_signals(self.X_test, sigma, noise)
            z_star, _ = solve_lasso_cached(X_noisy, self.D, self.lmbd)
            self.noisy_test[sigma] = (
                X_noisy, lasso_objective(z_star, X_noisy, self.D, self.lmbd))
        self.iterate_noise = torch.randn(
            self.X_test.shape[0], self.D.shape[1], generator=generator,
            dtype=torch.float64)
        if self.iterate_noise_layers == "every":
            # Drawn after the other noises, which stay those of "middle".
            self.layer_noise = torch.randn(
                self.n_layers - 1, *self.z_star_test.shape, generator=generator,
                dtype=torch.float64)
            self.layer_noise_scale = torch.linalg.vector_norm(
                self.z_star_test, dim=-1, keepdim=True) / self.D.shape[1] ** 0.5
        # (network class, metric family) already warned about a missing hook.
        self.warned_without_hook = set()

    def get_objective(self):
        return dict(X=self.X_train, D=self.D, lmbd=self.lmbd,
                    n_layers=self.n_layers, z_star=self.z_star_train)

    def _iterates(self, network, X, extra_layers=0, **hook):
        """The network's iterates on ``X`` as float64, shape checked; with
        ``extra_layers = k``, ``k`` layers past the trained depth."""
        if extra_layers:
            hook["extra_layers"] = extra_layers
        iterates = network(X, **hook)
        if not torch.is_tensor(iterates):
            raise ValueError(f"network(x) returned a {type(iterates).__name__}, not a tensor "
                             "of iterates.")
        expected = (self.n_layers + extra_layers + 1, X.shape[0], self.D.shape[1])
        if tuple(iterates.shape) != expected:
            call, depth = "network(x)", "n_layers + 1"
            if extra_layers:
                call = f"network(x, extra_layers={extra_layers})"
                depth = "n_layers + extra_layers + 1"
            raise ValueError(
                f"{call} returned iterates of shape {tuple(iterates.shape)}; the objective "
                f"asks for ({depth}, N, m) = {expected}, z_0 = 0 onwards, with "
                f"n_layers={self.n_layers}.")
        return iterates.to(torch.float64)

    def _final_gap(self, network, X, objective_star, **hook):
        z_last = self._iterates(network, X, **hook)[-1]
        return float((lasso_objective(z_last, X, self.D, self.lmbd)
                      - objective_star).mean())

    def _warn_without_hook(self, network, family, reason):
        """One warning per network class and metric family."""
        key = (type(network).__qualname__, family)
        if key in self.warned_without_hook:
            return
        self.warned_without_hook.add(key)
        warnings.warn(f"{reason}: the {family} metrics of this network are NaN; the other "
                      "metrics are computed.", UserWarning)

    def evaluate_result(self, network, multipliers=None):
        if not isinstance(network, nn.Module):
            raise ValueError(f"network must be a torch.nn.Module, got a "
                             f"{type(network).__name__}.")
        # Score in float64 on the CPU, whatever the solver trained with.
        network = to_cpu_float64(network).eval()
        L = self.n_layers
        has_hook = accepts_iterate_noise(network)
        if not has_hook:
            self._warn_without_hook(
                network, "gap_iterate_noise_<sigma>",
                f"{type(network).__qualname__}.forward takes no iterate_noise argument, the "
                "hook through which the objective perturbs the iterates "
                "(solvers_common.unrolled.UnrolledNetwork has it)")
        extra = max(self.extra_depths, default=0)
        why_not = cannot_continue(network) if extra else None
        if why_not is not None:
            self._warn_without_hook(network, "gap_extra_layers_<k> (k >= 1)", why_not)
            extra = 0
        with torch.no_grad():
            # One pass past the trained depth: its first L + 1 iterates are
            # those of the network at its depth.
            extended = self._iterates(network, self.X_test, extra_layers=extra)
            iterates = extended[:L + 1]
            scores = layer_metrics(iterates, self.X_test, self.D, self.lmbd,
                                   self.z_star_test, self.objective_star_test)
            metrics = dict(
                value=float(scores["gap"][-1]),
                nmse=float(scores["nmse"][-1]),
                descent_violation_rate=float(scores["descent_violation"].mean()),
                distance_descent_rate=float(scores["distance_descent"].mean()),
                support_size=float(scores["support_size"][-1]),
                validation_gap=self._final_gap(network, self.X_validation,
                                               self.objective_star_validation),
                support_size_star=float(
                    (self.z_star_test != 0).sum(-1).to(torch.float64).mean()),
            )
            for layer in range(L + 1):
                metrics[f"gap_layer_{layer}"] = float(scores["gap"][layer])
                metrics[f"nmse_layer_{layer}"] = float(scores["nmse"][layer])
            for layer in range(1, L + 1):
                metrics[f"distance_descent_layer_{layer}"] = float(
                    scores["distance_descent"][layer - 1])
            for sigma, (X_noisy, objective_star) in self.noisy_test.items():
                metrics[f"gap_input_noise_{sigma}"] = self._final_gap(
                    network, X_noisy, objective_star)
                metrics[f"gap_iterate_noise_{sigma}"] = self._final_gap(
                    network, self.X_test, self.objective_star_test,
                    iterate_noise=self._iterate_perturbation(sigma),
                ) if has_hook else math.nan
            past = extra_layer_metrics(extended, self.X_test, self.D, self.lmbd,
                                       self.objective_star_test, L,
                                       [k for k in self.extra_depths if k <= extra])
            for k in self.extra_depths:
                gap, descent_rate = past.get(k, (math.nan, math.nan))
                metrics[f"gap_extra_layers_{k}"] = gap
                if k > 0:
                    metrics[f"descent_rate_extra_layers_{k}"] = descent_rate
        if multipliers is not None:
            # A tensor may come on the solver's device: to the CPU first.
            multipliers = torch.as_tensor(multipliers).detach().to("cpu", torch.float64)
            for layer, nu in enumerate(multipliers.tolist(), start=1):
                metrics[f"multiplier_layer_{layer}"] = float(nu)
        return metrics

    def _iterate_perturbation(self, sigma):
        if self.iterate_noise_layers == "every":
            return every_layer_perturbation(sigma, self.layer_noise, self.layer_noise_scale)
        return iterate_perturbation(self.n_layers // 2, sigma, self.iterate_noise)

    def get_one_result(self):
        return dict(network=ISTA(self.D, self.lmbd, self.n_layers))
