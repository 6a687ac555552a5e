"""benchopt glue shared by the solvers of benchmark_sparse_training: build and
initialize the network, train it epoch by epoch (cross-entropy on labels, or
the mean squared error on clean images for the denoising task), hand it to the
objective."""
import copy

from benchopt import BaseSolver

from solvers_common.classification import ClassificationTrainer, check_training_options
from solvers_common.denoising import DenoisingTrainer
from solvers_common.device import callback_loop, get_device, synchronize
from solvers_common.models import build_model, check_density, sparse_initialization_
from solvers_common.optim import REGULARIZER_STRUCTURES
from solvers_common.optim.checks import check_integer, check_positive
from solvers_common.seeding import torch_generator
from solvers_common.stopping import NoCriterion

# The training loop of each task of the objective.
TRAINERS = {"classification": ClassificationTrainer, "denoising": DenoisingTrainer}


def check_density_named(name, value):
    """:func:`check_density`'s rule, (0, 1], with an error that names the
    parameter ``name``."""
    try:
        check_density(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} must be a number in (0, 1].") from None


class TrainingSolver(BaseSolver):
    """Trains ``build_model(model, ..., **model_options)`` with
    ``self.make_optimizer(network)`` for ``epochs`` epochs of mini-batches;
    benchopt evaluates the network after epochs 0, 1, 2, 3, 4, 6, 9, 13, ...
    (its geometric schedule) and after the last epoch. The model is built and
    initialized in the untimed ``set_objective``, the same way for every
    solver; its training is timed. Subclasses define ``parameters``
    (including ``init_density``, the expected fraction of non-zero weights at
    initialization) and ``make_optimizer``; ``trainer_options`` returns extra
    options of the training loop (for example ``label_smoothing``);
    ``after_epoch`` is a hook run after every epoch. The objective's
    ``task`` chooses the loop's loss (:data:`TRAINERS`): cross-entropy on
    labels, or the mean squared error on clean images (``y`` then holds the
    clean images and the network has one output per pixel).

    ``check_parameters`` (subclasses extend it) validates the parameters in
    ``set_objective``, before the network is built: ``epochs`` is an integer
    >= 0, ``epochs=0`` scores the initialization, untrained; ``lr``, where a
    solver has one, a finite number > 0; ``init_density`` a number in
    (0, 1]."""

    sampling_strategy = "callback"
    # Fixed-budget training: runs end after `epochs` epochs or at --max-runs /
    # --timeout, not when the noisy training loss stops improving. Monitoring
    # `value` makes benchopt stop a run whose training loss is NaN or jumps by
    # more than 1e5, and record it as diverged.
    stopping_criterion = NoCriterion(strategy="callback", key_to_monitor="value")

    common_parameters = {
        "batch_size": [128],
        "epochs": [100],
        "lr_schedule": ["constant"],
        "augmentation": ["none"],
        "device": ["auto"],
    }
    test_config = {"batch_size": 16, "epochs": 2}

    def check_parameters(self):
        """Raise ValueError on bad solver parameters; subclasses extend it."""
        check_training_options(self.batch_size, self.lr_schedule, self.augmentation)
        check_integer("epochs", self.epochs, minimum=0)
        # A rate of 0 would leave the network at its initialization.
        if "lr" in self.parameters:
            check_positive("lr", self.lr)
        check_density_named("init_density", self.init_density)

    def set_objective(self, X, y, model, n_outputs, model_options, task="classification"):
        self.task = task
        self.check_parameters()
        self.device_ = get_device(self.device)
        # A CPU generator draws the initialization and the batches, so the same
        # seed gives the same numbers whatever the device.
        generator = torch_generator(self.get_seed(use_repetition=True))
        self.network = build_model(model, tuple(X.shape[1:]), n_outputs,
                                   **model_options).to(self.device_)
        # The optimizers check their settings when created, before any
        # training; their state is created at their first step, after the
        # initialization below.
        self.optimizer = self.make_optimizer(self.network)
        structure = REGULARIZER_STRUCTURES.get(getattr(self, "regularizer", "l1"), "entries")
        sparse_initialization_(self.network, self.init_density, generator, structure)
        self.trainer = TRAINERS[task](
            self.network, self.optimizer, X.to(self.device_), y.to(self.device_),
            self.batch_size, generator, self.lr_schedule, self.augmentation,
            epochs=self.epochs, **self.trainer_options())

    def make_optimizer(self, network):
        raise NotImplementedError

    def trainer_options(self):
        return {}

    def after_epoch(self):
        pass

    def warm_up(self):
        # One-off costs of the process (CUDA context, kernel selection) are
        # paid here, untimed, by a forward and backward pass of a throwaway
        # copy, so that the first solver of a run is not charged for them.
        network = copy.deepcopy(self.network)
        batch = self.trainer.X[:self.batch_size]
        network(batch).sum().backward()
        self.synchronize()

    def synchronize(self):
        synchronize(self.device_)

    def run(self, callback):
        callback_loop(callback, self.train_epoch, self.synchronize, n_rounds=self.epochs)

    def train_epoch(self):
        self.trainer.train_epoch()
        self.after_epoch()

    def get_result(self):
        return dict(model=self.network)
