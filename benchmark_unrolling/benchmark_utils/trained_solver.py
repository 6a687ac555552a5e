"""benchopt glue shared by the solvers that train an unrolled network."""
import math
import numbers

import torch
from benchopt import BaseSolver

from solvers_common.device import callback_loop, get_device, mixed_precision, synchronize
from solvers_common.learning_rate import check_lr_schedule
from solvers_common.optim.checks import check_integer, check_positive
from solvers_common.seeding import torch_generator
from solvers_common.stopping import NoCriterion
from solvers_common.unrolled import UnrolledTrainer
from solvers_common.unrolled.training import LOSSES

# Seed of the throwaway network that warm_up trains for one step.
WARM_UP_SEED = 12345


class TrainedSolver(BaseSolver):
    """Trains ``self.build_network(D, lmbd, n_layers, generator)`` with the
    trainer of ``self.make_trainer`` for ``epochs`` epochs; benchopt's x-axis
    is training time, with one evaluation every ``steps_per_evaluation`` Adam
    steps (one epoch when None) on benchopt's geometric schedule, and one
    after the last step. Subclasses define ``build_network``.
    ``dtype``: ``float32``, ``float64``, or ``bfloat16``, mixed precision
    (float32 data and master weights, each step's forward pass under
    ``torch.autocast`` in bfloat16), on the CPU and on CUDA.

    The clock: the network is built (ALISTA's analytic weights, the Lipschitz
    constants) and trained inside the timed ``run``, as ISTA and FISTA are
    built there; one-off costs of the process (CUDA context, kernel
    selection, first-call dispatch) are paid in ``warm_up`` by one step of a
    throwaway network, so that every solver is charged the same way.

    ``lr_schedule``: ``constant``, ``cosine`` or ``step``
    (:mod:`solvers_common.learning_rate`), over the ``epochs * (N //
    batch_size)`` Adam steps of the whole training (a run that ``--max-runs``
    or ``--timeout`` cuts shorter stops before the end of its schedule).

    ``check_parameters`` (subclasses extend it) validates the parameters in
    ``set_objective``, before any network is built: ``lr`` is a finite number
    > 0, ``batch_size`` an integer >= 1 (at most the number of training
    signals, which the trainer checks in ``warm_up``), ``epochs`` an integer
    >= 0: ``epochs=0`` scores the untrained network, its initialization."""

    sampling_strategy = "callback"
    # Fixed-budget training: a run lasts `epochs` epochs unless --max-runs /
    # --timeout cut it shorter, whatever the noisy progress of the test gap;
    # monitoring `value` lets benchopt record a NaN gap as diverged.
    stopping_criterion = NoCriterion(strategy="callback", key_to_monitor="value")

    common_parameters = {
        "loss": ["supervised"],
        "lr": [1e-3],
        "batch_size": [512],
        "epochs": [100],
        "lr_schedule": ["constant"],
        "steps_per_evaluation": [None],
        "device": ["auto"],
        "dtype": ["float32"],
    }

    def check_parameters(self):
        """A ValueError naming the parameter for a bad value; subclasses
        extend it with their own parameters."""
        check_integer("epochs", self.epochs, minimum=0)
        check_lr_schedule(self.lr_schedule)
        if self.steps_per_evaluation is not None and not (
                isinstance(self.steps_per_evaluation, numbers.Integral)
                and self.steps_per_evaluation >= 1):
            raise ValueError(f"steps_per_evaluation={self.steps_per_evaluation!r} must be "
                             "None (one epoch) or an integer >= 1.")
        check_positive("lr", self.lr)
        check_integer("batch_size", self.batch_size)
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r} is unknown; accepted: {list(LOSSES)}.")

    def set_objective(self, X, D, lmbd, n_layers, z_star):
        self.check_parameters()
        self.device = get_device(self.device)
        # bfloat16: float32 data and weights, the steps under autocast.
        self.dtype_, self.autocast_dtype = mixed_precision(self.dtype)

        def as_tensor(array):
            return torch.as_tensor(array).to(self.device, self.dtype_)

        # Moving the data is the benchmark's cost, not the solver's: untimed.
        self.X, self.D, self.z_star = as_tensor(X), as_tensor(D), as_tensor(z_star)
        self.lmbd, self.n_layers = float(lmbd), int(n_layers)

    def build(self, seed):
        """A new network and its trainer, drawing from a generator seeded
        with ``seed``."""
        self.generator = torch_generator(seed, device=self.device)
        self.network = self.build_network(self.D, self.lmbd, self.n_layers, self.generator)
        self.trainer = self.make_trainer()

    def trainer_options(self):
        """The trainer arguments of ``common_parameters``."""
        return dict(loss=self.loss, lr=self.lr, batch_size=self.batch_size,
                    generator=self.generator, autocast_dtype=self.autocast_dtype,
                    lr_schedule=self.lr_schedule, total_steps=self.total_steps())

    def total_steps(self):
        """The Adam steps of the whole training: ``epochs`` epochs of
        ``N // batch_size`` steps (the trainer drops the incomplete batch)."""
        return self.epochs * (self.X.shape[0] // int(self.batch_size))

    def make_trainer(self):
        return UnrolledTrainer(self.network, self.X, self.z_star, self.D, self.lmbd,
                               **self.trainer_options())

    def warm_up(self):
        # The trainer's own checks (against the network) also run here,
        # before the timed run.
        self.build(WARM_UP_SEED)
        self.trainer.train(1)
        self.synchronize()

    def synchronize(self):
        synchronize(self.device)

    def run(self, callback):
        self.build(self.get_seed(use_repetition=True))
        total_steps = self.total_steps()
        steps_per_round = self.steps_per_evaluation or self.trainer.steps_per_epoch
        steps_done = 0

        def train_round():
            nonlocal steps_done
            n_steps = min(steps_per_round, total_steps - steps_done)
            self.trainer.train(n_steps)
            steps_done += n_steps

        callback_loop(callback, train_round, self.synchronize,
                      n_rounds=math.ceil(total_steps / steps_per_round))

    def get_result(self):
        return dict(network=self.network)
