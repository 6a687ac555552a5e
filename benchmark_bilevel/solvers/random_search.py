import torch
from benchmark_utils.black_box import BlackBoxSolver


class Solver(BlackBoxSolver):
    """Random search (Bergstra and Bengio, "Random search for
    hyper-parameter optimization", JMLR 2012): every coordinate of lmbd drawn
    uniformly in [lmbd_min, lmbd_max] (or relative to log lmbd_max:
    benchmark_utils/black_box.py; log-uniform regularizations
    exp(lmbd)), from the solver's seeded generator; the result is the
    candidate with the smallest validation loss F(theta*(lmbd), lmbd) so far.
    """

    name = "random_search"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        **BlackBoxSolver.range_parameters,
        **BlackBoxSolver.full_batch_parameters,
    }
    test_config = {"eval_freq": 1}

    def candidate(self, k):
        low, high = self.lmbd_range
        uniform = torch.rand(self.lmbd.shape, generator=self.generator,
                             device=self.device, dtype=self.dtype_)
        return low + (high - low) * uniform
