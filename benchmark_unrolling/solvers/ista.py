from benchmark_utils.fixed_solver import FixedNetworkSolver

from solvers_common.unrolled import ISTA


class Solver(FixedNetworkSolver):
    """ISTA (Daubechies, Defrise & De Mol 2004) with step 1 / ||D||_2^2,
    unrolled for exactly ``n_layers`` iterations: nothing is learned."""

    name = "ista"
    requirements = ["pip::torch"]
    network_class = ISTA
