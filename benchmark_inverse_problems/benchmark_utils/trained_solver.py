"""benchopt glue shared by the solvers of benchmark_inverse_problems."""
import math

from benchopt import BaseSolver

from solvers_common.device import callback_loop, get_device, get_dtype, synchronize
from solvers_common.inverse_problems import RestorationTrainer
from solvers_common.learning_rate import check_lr_schedule
from solvers_common.optim.checks import (
    check_integer,
    check_positive,
    check_unit_interval,
)
from solvers_common.seeding import seed_torch, torch_generator
from solvers_common.stopping import NoCriterion

# Seed of the throwaway model that warm_up trains for one step.
WARM_UP_SEED = 12345


class RestorationSolver(BaseSolver):
    """Receives the training images, the operator and its noise level on the
    solver's device (untimed), and returns ``{"restorer": self.restorer()}``.
    ``check_parameters`` (subclasses extend it) validates every parameter in
    ``set_objective``, before any model is built: a bad value raises a
    ValueError naming the parameter and the values it accepts."""

    def set_objective(self, train_images, physics, noise_level, lipschitz, n_iterations):
        self.device = get_device(getattr(self, "device", "auto"))
        self.dtype_ = get_dtype(getattr(self, "dtype", "float32"))
        self.train_images = train_images.to(self.device, self.dtype_)
        self.physics = physics.to(self.device, self.dtype_)
        self.noise_level, self.lipschitz = float(noise_level), float(lipschitz)
        self.step = 1.0 / self.lipschitz
        self.n_iterations = int(n_iterations)
        self.n_channels = int(train_images.shape[1])
        self.image_size = int(min(train_images.shape[-2:]))
        self.check_parameters()

    def check_parameters(self):
        pass

    def get_result(self):
        return dict(restorer=self.restorer())


class TrainedSolver(RestorationSolver):
    """Trains ``self.model`` (from ``build_model(generator)``) with the trainer
    of ``make_trainer()`` for ``epochs`` epochs, evaluated on benchopt's
    geometric schedule of epochs and after the last step, through the suite's
    :func:`solvers_common.device.callback_loop`. ``lr_schedule`` (constant,
    cosine or step, :mod:`solvers_common.learning_rate`) runs over the whole
    budget, ``epochs`` times the steps of an epoch. The model is built inside
    the timed ``run``; ``warm_up`` pays the one-off costs (first-call
    dispatch, CUDA context) with one step of a throwaway model.

    ``lr`` is a finite number > 0, ``batch_size`` an integer from 1 to the
    number of training images, ``epochs`` an integer >= 0: ``epochs=0``
    scores the untrained model, its initialization."""

    sampling_strategy = "callback"
    stopping_criterion = NoCriterion(strategy="callback", key_to_monitor="value")

    common_parameters = {
        "lr": [1e-3],
        "lr_schedule": ["constant"],
        "batch_size": [16],
        "epochs": [30],
        "device": ["auto"],
        "dtype": ["float32"],
    }

    def check_parameters(self):
        check_integer("epochs", self.epochs, minimum=0)
        check_lr_schedule(self.lr_schedule)
        check_positive("lr", self.lr)
        check_integer("batch_size", self.batch_size)
        if self.batch_size > self.train_images.shape[0]:
            raise ValueError(f"batch_size={self.batch_size} is larger than the "
                             f"{self.train_images.shape[0]} training images.")

    def build(self, seed):
        self.generator = torch_generator(seed, device=self.device)
        seed_torch(seed)  # torch.nn's default initializations draw from the global generator
        self.model = self.build_model(self.generator).to(self.device, self.dtype_)
        self.trainer = self.make_trainer()
        self.trainer.schedule(self.lr_schedule, int(self.epochs) * self.trainer.steps_per_epoch)

    def warm_up(self):
        self.build(WARM_UP_SEED)
        self.trainer.train(1)
        synchronize(self.device)

    def run(self, callback):
        self.build(self.get_seed(use_repetition=True))
        steps_per_epoch = self.trainer.steps_per_epoch
        callback_loop(callback, lambda: self.trainer.train(steps_per_epoch),
                      lambda: synchronize(self.device),
                      n_rounds=math.ceil(self.epochs))


class UnrolledRestorationSolver(TrainedSolver):
    """A network trained end to end as the restoration method (its layers are
    the iterates), with or without the descending constraints of Hadou,
    NaderiAlizadeh & Ribeiro (2024): subclasses define ``build_model`` and the
    parameters ``constrained``, ``epsilon``, ``lr_dual``, ``noise_injection``.
    ``epsilon`` is in [0, 1) (the constraint of layer l asks the gradient
    norm to shrink by a factor ``1 - epsilon``): ``epsilon=0`` asks only that
    it does not grow. ``lr_dual`` is a finite number > 0. Both are checked
    with or without ``constrained``."""

    def check_parameters(self):
        super().check_parameters()
        check_unit_interval("epsilon", self.epsilon)
        check_positive("lr_dual", self.lr_dual)

    def make_trainer(self):
        return RestorationTrainer(
            self.model, self.physics, self.train_images, self.noise_level, self.lipschitz,
            constrained=self.constrained, epsilon=self.epsilon, lr_dual=self.lr_dual,
            noise_injection=self.noise_injection, lr=self.lr, batch_size=self.batch_size,
            generator=self.generator)

    def restorer(self):
        return self.model

    def get_result(self):
        result = super().get_result()
        if self.constrained:
            result["multipliers"] = self.trainer.multipliers.detach().cpu()
        return result
