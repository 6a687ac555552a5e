import torch
from benchmark_utils.black_box import BlackBoxSolver


class Solver(BlackBoxSolver):
    """Random search (Bergstra and Bengio, "Random search for
    hyper-parameter optimization", JMLR 2012): every coordinate of lmbd drawn
    uniformly in [lmbd_min, lmbd_max] (log-uniform regularizations
    exp(lmbd)), from the solver's seeded generator; the result is the
    candidate with the smallest validation loss F(theta*(lmbd), lmbd) so far.
    """

    name = "random_search"
    parameters = {
        "lmbd_min, lmbd_max": [(-10.0, 2.0)],
        **BlackBoxSolver.full_batch_parameters,
    }
    test_config = {"eval_freq": 1}

    def candidate(self, k):
        uniform = torch.rand(self.lmbd.shape, generator=self.generator,
                             device=self.device, dtype=self.dtype_)
        return self.lmbd_min + (self.lmbd_max - self.lmbd_min) * uniform
