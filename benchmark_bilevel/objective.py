"""Bilevel optimization: min over lmbd of h(lmbd) = F(theta*(lmbd), lmbd),
theta*(lmbd) = argmin over theta of G(theta, lmbd), G an average over training
samples and F over validation samples.

A solver returns its current (theta, lmbd). The objective scores them in
float64 on the CPU against references computed here on the full data:
theta*(lmbd) by Newton-CG to ||grad_theta G|| <= 1e-10 (warm-started from
the previous evaluation) and grad h by implicit differentiation with CG to a
relative residual of 1e-10.
"""
import math

import torch
from benchopt import BaseObjective

from solvers_common.bilevel import QuadraticProblem, ValueFunction


class Objective(BaseObjective):
    name = "Bilevel optimization"
    url = "https://github.com/learnopt-bench/learnopt-bench"
    min_benchopt_version = "1.9"
    requirements = ["pip::torch", "pip::scikit-learn"]

    parameters = {}
    test_config = {"dataset": {"name": "quadratic"}}

    def skip(self, unavailable=None, **data):
        # Datasets whose files are missing hand over a one-line message.
        if unavailable is not None:
            return True, unavailable
        return False, None

    def set_data(self, problem, X_test=None, y_test=None):
        # One CPU thread for the whole run: the mini-batch oracles are
        # microseconds of work, where a second thread only adds
        # synchronization, and on a shared machine an oversubscribed OpenMP
        # barrier made evaluations 100 times slower (15 s instead of 0.15 s
        # on datacleaning).
        torch.set_num_threads(1)
        self.problem = problem.to(device="cpu", dtype=torch.float64)
        self.value_function = ValueFunction(self.problem, inner_tol=1e-10,
                                            linear_system_tol=1e-10)
        self.test = None
        if X_test is not None:
            X_test = torch.as_tensor(X_test, dtype=torch.float64)
            y_test = torch.as_tensor(y_test)
            self.test = (X_test, y_test if not y_test.is_floating_point()
                         else y_test.to(torch.float64))
        # h* is known in closed form on quadratic problems only.
        self.h_star = (float(self.problem.optimum()[1])
                       if isinstance(self.problem, QuadraticProblem) else None)

    def get_objective(self):
        return dict(problem=self.problem)

    def _metric_names(self):
        names = ["value", "grad_norm", "inner_gap", "inner_distance"]
        if self.h_star is not None:
            names.append("subopt")
        if hasattr(self.problem, "scores"):
            names += ["validation_loss", "validation_accuracy"]
            if self.test is not None:
                names += ["test_loss", "test_accuracy"]
        return names

    def evaluate_result(self, theta, lmbd):
        theta = torch.as_tensor(theta).detach().to("cpu", torch.float64)
        lmbd = torch.as_tensor(lmbd).detach().to("cpu", torch.float64)
        if not (bool(torch.isfinite(theta).all()) and bool(torch.isfinite(lmbd).all())):
            # benchopt records a NaN value as a diverged run.
            return {name: math.nan for name in self._metric_names()}
        problem = self.problem
        value, gradient, theta_star = self.value_function.value_and_gradient(lmbd)
        metrics = dict(
            value=float(value),
            grad_norm=float(torch.linalg.vector_norm(gradient)),
            inner_gap=float(problem.inner_loss(theta, lmbd)
                            - problem.inner_loss(theta_star, lmbd)),
            inner_distance=float(torch.linalg.vector_norm(theta - theta_star)),
        )
        if self.h_star is not None:
            metrics["subopt"] = float(value) - self.h_star
        if hasattr(problem, "scores"):
            # The model the hyperparameters lmbd produce: theta*(lmbd).
            loss, accuracy = problem.scores(theta_star, problem.X_outer, problem.y_outer)
            metrics.update(validation_loss=loss, validation_accuracy=accuracy)
            if self.test is not None:
                loss, accuracy = problem.scores(theta_star, *self.test)
                metrics.update(test_loss=loss, test_accuracy=accuracy)
        return metrics

    def get_one_result(self):
        theta0, lmbd0 = self.problem.initial_point()
        return dict(theta=theta0, lmbd=lmbd0)
