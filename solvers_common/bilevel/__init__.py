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
from .sampling import MinibatchSampler, check_positive
from .schedules import StepSizeSchedule
from .stochastic_routines import (
    inner_sgd,
    linear_system_sgd,
    neumann_random_truncation,
    stochastic_neumann,
)
from .variance_reduction import SagaMemory

__all__ = [
    "FULL_BATCH",
    "BilevelProblem",
    "DataCleaningProblem",
    "LogisticRegressionProblem",
    "MinibatchSampler",
    "QuadraticProblem",
    "SagaMemory",
    "StepSizeSchedule",
    "ValueFunction",
    "check_positive",
    "conjugate_gradient",
    "inner_sgd",
    "linear_system_sgd",
    "make_quadratic_problem",
    "neumann_random_truncation",
    "neumann_series",
    "newton_cg",
    "stochastic_neumann",
]
