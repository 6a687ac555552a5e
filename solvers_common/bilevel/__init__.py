"""Bilevel optimization: problems as oracle classes, mini-batch sampling,
step-size schedules, variance-reduction memory, linear-system solvers and the
value function h used for scoring. Free of benchopt."""
from .hypergradient import ValueFunction
from .linear_solvers import conjugate_gradient, neumann_series, newton_cg
from .problems import (
    FULL_BATCH,
    BilevelProblem,
    DataCleaningProblem,
    LogisticRegressionProblem,
    QuadraticProblem,
    make_quadratic_problem,
)
from .sampling import MinibatchSampler, check_fraction, check_positive
from .schedules import StepSizeSchedule
from .sparse import (
    SPARSE_PROBLEMS,
    LassoProblem,
    SparseBilevelProblem,
    SparseLogisticRegressionProblem,
    correlated_regression,
    make_sparse_problem,
    standardize_splits,
)
from .sparse_cd import SupportJacobianDescent, UnrolledCoordinateDescent
from .sparse_hypergradients import (
    BacktrackingGradientDescent,
    OuterGradientDescent,
    UnrolledProximalGradient,
    check_iterations,
    check_truncation,
    implicit_forward_hypergradient,
    implicit_hypergradient,
)
from .stochastic_routines import (
    HypergradientBatches,
    draw_batches,
    draw_hypergradient_batches,
    inner_sgd,
    linear_system_sgd,
    neumann_hypergradient,
    neumann_random_truncation,
    random_truncation_length,
    stochastic_neumann,
)
from .variance_reduction import RecursiveEstimator, SagaMemory
from .work import CountingProblem, batch_samples, mean_block_size

__all__ = [
    "BacktrackingGradientDescent",
    "FULL_BATCH",
    "BilevelProblem",
    "CountingProblem",
    "HypergradientBatches",
    "LassoProblem",
    "SPARSE_PROBLEMS",
    "OuterGradientDescent",
    "SparseBilevelProblem",
    "SparseLogisticRegressionProblem",
    "SupportJacobianDescent",
    "UnrolledCoordinateDescent",
    "UnrolledProximalGradient",
    "check_iterations",
    "check_truncation",
    "correlated_regression",
    "implicit_forward_hypergradient",
    "implicit_hypergradient",
    "standardize_splits",
    "DataCleaningProblem",
    "LogisticRegressionProblem",
    "MinibatchSampler",
    "QuadraticProblem",
    "RecursiveEstimator",
    "SagaMemory",
    "StepSizeSchedule",
    "ValueFunction",
    "batch_samples",
    "check_fraction",
    "check_positive",
    "conjugate_gradient",
    "draw_batches",
    "draw_hypergradient_batches",
    "inner_sgd",
    "linear_system_sgd",
    "make_quadratic_problem",
    "make_sparse_problem",
    "mean_block_size",
    "neumann_hypergradient",
    "neumann_random_truncation",
    "neumann_series",
    "newton_cg",
    "random_truncation_length",
    "stochastic_neumann",
]
