"""Bilevel optimization: min over lmbd of h(lmbd) = F(theta*(lmbd), lmbd),
theta*(lmbd) = argmin over theta of G(theta, lmbd), G an average over training
samples and F over validation samples.

A solver returns its current (theta, lmbd). The objective scores them in
float64 on the CPU against references the problem computes on the full data:
theta*(lmbd) by Newton-CG to ||grad_theta G|| <= 1e-10 (warm-started from
the previous evaluation) and grad h by implicit differentiation with CG to a
relative residual of 1e-10; on the l1-regularized problems
(``problem.smooth_inner`` False), theta*(lmbd) by the problem's own solver
to a relative duality gap of 1e-12 and grad h by implicit differentiation
on the support of theta* (a direct solve).

The hypergradient study (``study_lmbd_ratio`` set, l1-regularized problems
only): lmbd is held at log(study_lmbd_ratio) + lmbd_max (exp(lmbd_max) the
smallest regularization with theta* = 0), solvers report their hypergradient
estimate after N inner iterations (``hypergradient``, ``n_inner_iterations``;
N grows by ``study_stride`` between evaluations)
and the objective reports ``hypergradient_error`` (||g_N - g*|| / ||g*||,
also the ``value``), ``support_identified`` (1 when supp(theta_N) =
supp(theta*)), ``inner_distance``, ``inner_gap`` and ``n_inner_iterations``.

Work: ``oracle_calls``, the per-sample oracle evaluations the solver has
made so far (solvers_common/bilevel/work.py; NaN from a solver that does
not count them), reported at every evaluation.

Selection (``validation_metric``, read by ci/tune.py): h is already a
validation loss (F averages the outer, validation samples; test data, where
a dataset has some, is never used). On the quadratic, where h* is known,
a run scores the oracle calls it takes to divide h - h* (``subopt``) by
1e6 (what ci/claims_bilevel.py measures for C5, by time), so selection
never rests on wall-clock time; elsewhere, the final h (``value``; the
hypergradient error in the hypergradient study).
"""
import math

import torch
from benchopt import BaseObjective

from solvers_common.bilevel import QuadraticProblem, ValueFunction
from solvers_common.optim.checks import check_integer, check_positive_or_none
from solvers_common.small_block_allocator import install_small_block_allocator


class Objective(BaseObjective):
    name = "Bilevel optimization"
    # What the benchmark is judged on (reports rank solvers by it): h, the
    # outer loss at the inner solution.
    primary_metric = {"name": "value", "better": "lower", "beside": ["grad_norm"]}
    # The first entry applies where subopt exists (the quadratic), the second
    # elsewhere (subopt absent, or NaN in a table of several problems).
    validation_metric = [
        {"name": "subopt", "better": "lower", "work": "oracle_calls", "reduction": 1e-6},
        {"name": "value", "better": "lower"},
    ]
    url = "https://github.com/learnopt-bench/learnopt-bench"
    min_benchopt_version = "1.9"
    requirements = ["pip::torch", "pip::scikit-learn", "pip::numba", "pip::numpy"]

    parameters = {"study_lmbd_ratio": [None], "study_stride": [10]}
    test_config = {"dataset": {"name": "quadratic"}}

    def skip(self, unavailable=None, problem=None, **data):
        # Before any skip: a bad value is refused on every dataset, and
        # study_stride with the study on or off.
        check_positive_or_none("study_lmbd_ratio", self.study_lmbd_ratio)
        if self.study_lmbd_ratio is not None and self.study_lmbd_ratio >= 1:
            raise ValueError(f"study_lmbd_ratio={self.study_lmbd_ratio!r} must be None (no "
                             "study) or in (0, 1).")
        check_integer("study_stride", self.study_stride)
        # Datasets whose files are missing hand over a one-line message.
        if unavailable is not None:
            return True, unavailable
        if self.study_lmbd_ratio is not None and getattr(problem, "smooth_inner", True):
            return True, ("the hypergradient study (study_lmbd_ratio) runs on "
                          "l1-regularized problems only.")
        return False, None

    def set_data(self, problem, X_test=None, y_test=None):
        # One CPU thread for the whole run: the mini-batch oracles are
        # microseconds of work, where a second thread only adds
        # synchronization, and on a shared machine an oversubscribed OpenMP
        # barrier made evaluations 100 times slower (15 s instead of 0.15 s
        # on datacleaning).
        torch.set_num_threads(1)
        # Every solver of the run, eager or compiled, under the same CPU
        # allocator: the mini-batch iterations allocate tens of small blocks
        # each, which torch's default allocator serves slowly (see
        # small_block_allocator).
        install_small_block_allocator()
        self.problem = problem.to(device="cpu", dtype=torch.float64)
        self.value_function = ValueFunction(self.problem,
                                            inner_tol=self.problem.reference_inner_tol,
                                            linear_system_tol=1e-10)
        self.study = None
        if self.study_lmbd_ratio is not None:
            lmbd = self.problem.initial_point()[1]
            lmbd = torch.full_like(lmbd, self.problem.lmbd_max()
                                   + math.log(self.study_lmbd_ratio))
            _, gradient, theta_star = self.value_function.value_and_gradient(lmbd)
            self.study = dict(lmbd=lmbd, gradient=gradient, theta_star=theta_star)
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
        if self.study is not None:
            return dict(problem=self.problem, study_lmbd=self.study["lmbd"].clone(),
                        study_stride=self.study_stride)
        return dict(problem=self.problem)

    def _metric_names(self):
        if self.study is not None:
            return ["value", "hypergradient_error", "support_identified", "inner_distance",
                    "inner_gap", "n_inner_iterations"]
        names = ["value", "grad_norm", "inner_gap", "inner_distance", "oracle_calls"]
        if self.h_star is not None:
            names.append("subopt")
        if hasattr(self.problem, "scores"):
            names += ["validation_loss", "validation_accuracy"]
            if self.test is not None:
                names += ["test_loss", "test_accuracy"]
        return names

    def evaluate_result(self, theta, lmbd, hypergradient=None, n_inner_iterations=None,
                        oracle_calls=None):
        theta = torch.as_tensor(theta).detach().to("cpu", torch.float64)
        lmbd = torch.as_tensor(lmbd).detach().to("cpu", torch.float64)
        oracle_calls = math.nan if oracle_calls is None else float(oracle_calls)
        if not (bool(torch.isfinite(theta).all()) and bool(torch.isfinite(lmbd).all())):
            # benchopt records a NaN value as a diverged run.
            metrics = {name: math.nan for name in self._metric_names()}
            if "oracle_calls" in metrics:
                metrics["oracle_calls"] = oracle_calls
            return metrics
        if self.study is not None:
            return self._study_metrics(theta, hypergradient, n_inner_iterations)
        problem = self.problem
        value, gradient, theta_star = self.value_function.value_and_gradient(lmbd)
        metrics = dict(
            value=float(value),
            grad_norm=float(torch.linalg.vector_norm(gradient)),
            inner_gap=float(problem.inner_loss(theta, lmbd)
                            - problem.inner_loss(theta_star, lmbd)),
            inner_distance=float(torch.linalg.vector_norm(theta - theta_star)),
            oracle_calls=oracle_calls,
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

    def _study_metrics(self, theta, hypergradient, n_inner_iterations):
        """The hypergradient study: the estimate after N inner iterations
        against the reference at the fixed lmbd. A result without a
        hypergradient (a solver that does not honour the study) scores NaN."""
        study, problem = self.study, self.problem
        theta_star, lmbd = study["theta_star"], study["lmbd"]
        if hypergradient is None:
            error = math.nan
        else:
            hypergradient = torch.as_tensor(hypergradient).detach().to("cpu", torch.float64)
            error = float(torch.linalg.vector_norm(hypergradient - study["gradient"])
                          / torch.linalg.vector_norm(study["gradient"]).clamp_min(1e-300))
        return dict(
            value=error,
            hypergradient_error=error,
            support_identified=float(torch.equal(theta != 0, theta_star != 0)),
            inner_distance=float(torch.linalg.vector_norm(theta - theta_star)),
            inner_gap=float(problem.inner_loss(theta, lmbd) - problem.inner_loss(theta_star, lmbd)),
            n_inner_iterations=math.nan if n_inner_iterations is None
            else float(n_inner_iterations),
        )

    def get_one_result(self):
        theta0, lmbd0 = self.problem.initial_point()
        if self.study is not None:
            return dict(theta=theta0, lmbd=self.study["lmbd"],
                        hypergradient=torch.zeros_like(lmbd0), n_inner_iterations=0)
        return dict(theta=theta0, lmbd=lmbd0, oracle_calls=0)
