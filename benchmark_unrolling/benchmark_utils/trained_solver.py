"""benchopt glue shared by the solvers that train an unrolled network."""
import torch
from benchopt import BaseSolver
from benchopt.stopping_criterion import NoCriterion

from solvers_common.device import get_device, get_dtype
from solvers_common.seeding import torch_generator
from solvers_common.unrolled import UnrolledTrainer


class TrainedSolver(BaseSolver):
    """Trains ``self.build_network(D, lmbd, n_layers, generator)`` with the
    trainer of ``self.make_trainer``; benchopt's x-axis is training time,
    with one evaluation every ``steps_per_evaluation`` Adam steps (one epoch
    when None). Subclasses define ``build_network``."""

    sampling_strategy = "callback"
    # Fixed-budget training: the run length is set by --max-runs / --timeout,
    # not by the noisy progress of the test gap; monitoring `value` lets
    # benchopt record a NaN gap as diverged.
    stopping_criterion = NoCriterion(strategy="callback", key_to_monitor="value")

    common_parameters = {
        "loss": ["supervised"],
        "lr": [1e-3],
        "batch_size": [512],
        "steps_per_evaluation": [None],
        "device": ["auto"],
        "dtype": ["float32"],
    }

    def set_objective(self, X, D, lmbd, n_layers, z_star):
        self.device = get_device(self.device)
        self.dtype_ = get_dtype(self.dtype)
        self.generator = torch_generator(self.get_seed(use_repetition=True),
                                         device=self.device)

        def as_tensor(array):
            return torch.as_tensor(array).to(self.device, self.dtype_)

        self.X, self.D, self.z_star = as_tensor(X), as_tensor(D), as_tensor(z_star)
        self.lmbd, self.n_layers = float(lmbd), int(n_layers)
        self.network = self.build_network(self.D, self.lmbd, self.n_layers,
                                          self.generator)
        self.trainer = self.make_trainer()

    def make_trainer(self):
        return UnrolledTrainer(
            self.network, self.X, self.z_star, self.D, self.lmbd, loss=self.loss,
            lr=self.lr, batch_size=self.batch_size, generator=self.generator)

    def run(self, callback):
        n_steps = self.steps_per_evaluation or self.trainer.steps_per_epoch
        while callback():
            self.trainer.train(n_steps)

    def get_result(self):
        return dict(network=self.network)
