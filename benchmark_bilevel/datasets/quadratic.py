from benchopt import BaseDataset

from solvers_common.bilevel import make_quadratic_problem
from solvers_common.seeding import numpy_generator


class Dataset(BaseDataset):
    """Synthetic quadratic inner and outer problems with chosen conditioning:
    the mean inner Hessian has eigenvalues in [mu_inner, L_inner] and h has
    curvatures in [mu_outer, L_outer]; theta*(lmbd), h, grad h and h* are
    known in closed form (solvers_common.bilevel.QuadraticProblem). ``noise``
    scales the per-sample deviations from the means."""

    name = "quadratic"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        "dim_inner, dim_outer": [(20, 10)],
        "n_inner_samples, n_outer_samples": [(1024, 1024)],
        "mu_inner, L_inner": [(0.1, 1.0)],
        "mu_outer, L_outer": [(0.1, 1.0)],
        "noise": [0.1],
    }
    test_parameters = {
        "dim_inner, dim_outer": [(5, 3)],
        "n_inner_samples, n_outer_samples": [(64, 64)],
    }

    def get_data(self):
        problem = make_quadratic_problem(
            numpy_generator(self.get_seed(use_repetition=True)),
            dim_inner=self.dim_inner, dim_outer=self.dim_outer,
            n_inner_samples=self.n_inner_samples, n_outer_samples=self.n_outer_samples,
            mu_inner=self.mu_inner, L_inner=self.L_inner, mu_outer=self.mu_outer,
            L_outer=self.L_outer, noise=self.noise)
        return dict(problem=problem)
