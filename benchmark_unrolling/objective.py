"""Unrolled sparse coding: an L-layer network z_0 = 0 -> ... -> z_L that
approximates the Lasso solution of held-out test signals.

F_x(z) = 1/2 ||x - D z||^2 + lmbd ||z||_1, lmbd = lmbd_ratio * lmbd_max,
lmbd_max = max over training signals of ||D^T x||_inf.
"""
import torch
from benchopt import BaseObjective

from solvers_common.device import to_cpu_float64
from solvers_common.lasso import check_dictionary, lasso_objective, lmbd_max, solve_lasso
from solvers_common.seeding import torch_generator
from solvers_common.unrolled import ISTA
from solvers_common.unrolled.metrics import (
    iterate_perturbation,
    layer_metrics,
    perturb_signals,
)


class Objective(BaseObjective):
    name = "Unrolled sparse coding"
    url = "https://github.com/learnopt-bench/learnopt-bench"
    min_benchopt_version = "1.9"
    requirements = ["pip::torch", "pip::scikit-learn"]

    parameters = {
        "n_layers": [10],
        "lmbd_ratio": [0.1],
        "noise_levels": [(0.05, 0.1, 0.2)],
    }
    test_config = {"objective": {"n_layers": 3}}

    def skip(self, unavailable=None, **data):
        # Datasets whose files are missing hand over a one-line message.
        if unavailable is not None:
            return True, unavailable
        return False, None

    def set_data(self, D, X_train, X_test):
        if not 0 < self.lmbd_ratio < 1:
            raise ValueError(f"lmbd_ratio must be in (0, 1), got {self.lmbd_ratio}.")
        if int(self.n_layers) != self.n_layers or self.n_layers < 1:
            raise ValueError(f"n_layers must be an integer >= 1, got {self.n_layers}.")
        if any(not sigma > 0 for sigma in self.noise_levels):
            raise ValueError(f"noise_levels must be positive, got {self.noise_levels}.")
        self.D = torch.as_tensor(D, dtype=torch.float64)
        self.X_train = torch.as_tensor(X_train, dtype=torch.float64)
        self.X_test = torch.as_tensor(X_test, dtype=torch.float64)
        check_dictionary(self.X_train, self.D)
        check_dictionary(self.X_test, self.D)

        self.lmbd = float(self.lmbd_ratio * lmbd_max(self.X_train, self.D))
        # The references are computed once here, not at every evaluation.
        self.z_star_train, _ = solve_lasso(self.X_train, self.D, self.lmbd)
        self.z_star_test, _ = solve_lasso(self.X_test, self.D, self.lmbd)
        self.objective_star_test = lasso_objective(
            self.z_star_test, self.X_test, self.D, self.lmbd)

        generator = torch_generator(self.get_seed(use_repetition=True))
        self.noisy_test = {}
        for sigma in self.noise_levels:
            noise = torch.randn(self.X_test.shape, generator=generator,
                                dtype=torch.float64)
            X_noisy = perturb_signals(self.X_test, sigma, noise)
            z_star, _ = solve_lasso(X_noisy, self.D, self.lmbd)
            self.noisy_test[sigma] = (
                X_noisy, lasso_objective(z_star, X_noisy, self.D, self.lmbd))
        self.iterate_noise = torch.randn(
            self.X_test.shape[0], self.D.shape[1], generator=generator,
            dtype=torch.float64)

    def get_objective(self):
        return dict(X=self.X_train, D=self.D, lmbd=self.lmbd,
                    n_layers=self.n_layers, z_star=self.z_star_train)

    def _final_gap(self, network, X, objective_star, iterate_noise=None):
        z_last = network(X, iterate_noise=iterate_noise)[-1]
        return float((lasso_objective(z_last, X, self.D, self.lmbd)
                      - objective_star).mean())

    def evaluate_result(self, network, multipliers=None):
        # Score in float64 on the CPU, whatever the solver trained with.
        network = to_cpu_float64(network).eval()
        L = self.n_layers
        with torch.no_grad():
            iterates = network(self.X_test)
            if iterates.shape[0] != L + 1:
                raise ValueError(f"The network returned {iterates.shape[0] - 1} "
                                 f"layers, the objective asks for n_layers={L}.")
            scores = layer_metrics(iterates, self.X_test, self.D, self.lmbd,
                                   self.z_star_test, self.objective_star_test)
            metrics = dict(
                value=float(scores["gap"][-1]),
                nmse=float(scores["nmse"][-1]),
                descent_violation_rate=float(scores["descent_violation"].mean()),
                distance_descent_rate=float(scores["distance_descent"].mean()),
                support_size=float(scores["support_size"][-1]),
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
                    iterate_perturbation(L // 2, sigma, self.iterate_noise))
        if multipliers is not None:
            # A tensor may come on the solver's device: to the CPU first.
            multipliers = torch.as_tensor(multipliers).detach().to("cpu", torch.float64)
            for layer, nu in enumerate(multipliers.tolist(), start=1):
                metrics[f"multiplier_layer_{layer}"] = float(nu)
        return metrics

    def get_one_result(self):
        return dict(network=ISTA(self.D, self.lmbd, self.n_layers))
