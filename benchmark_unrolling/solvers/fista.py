from benchmark_utils.fixed_solver import FixedNetworkSolver

from solvers_common.unrolled import FISTA


class Solver(FixedNetworkSolver):
    """FISTA (Beck & Teboulle 2009, eq. (4.1)-(4.3)) with step 1 / ||D||_2^2,
    unrolled for exactly ``n_layers`` iterations: nothing is learned."""

    name = "fista"
    requirements = ["pip::torch"]
    network_class = FISTA
