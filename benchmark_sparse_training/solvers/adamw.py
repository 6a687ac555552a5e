import torch
from benchmark_utils.training_solver import TrainingSolver

from solvers_common.optim import weight_decay_parameter_groups
from solvers_common.optim.checks import check_nonnegative


class Solver(TrainingSolver):
    """AdamW (Loshchilov & Hutter, ICLR 2019, "Decoupled weight decay
    regularization", Algorithm 2): Adam's step plus a decay
    ``theta <- theta - lr weight_decay theta`` decoupled from the gradient,
    on linear and convolution weights only (not on biases, normalization
    parameters and embeddings). With its defaults it is the small-dataset
    recipe for vision transformers of Yu et al. (NeurIPS 2023, CRATE) and
    their code: a cosine learning-rate schedule over the whole training
    (``lr_schedule="cosine"``) and label smoothing of the cross-entropy
    targets (Szegedy et al., CVPR 2016, section 7). Dense baseline, started
    from a dense Kaiming initialization."""

    name = "adamw"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    # Around this recipe's lr 1e-3 on small data sets, with Yu et al.'s weight
    # decay 0.05 and ten times less.
    tuning_space = {"lr": [0.0003, 0.001, 0.003], "weight_decay": [0.005, 0.05]}
    parameters = {
        "lr": [1e-3],
        "weight_decay": [0.05],
        "label_smoothing": [0.1],
        "init_density": [1.0],
        **TrainingSolver.common_parameters,
        "lr_schedule": ["cosine"],
    }

    def check_parameters(self):
        super().check_parameters()
        check_nonnegative("weight_decay", self.weight_decay)

    def make_optimizer(self, network):
        return torch.optim.AdamW(weight_decay_parameter_groups(network, self.weight_decay),
                                 lr=self.lr)

    def skip(self, task="classification", **objective):
        if task != "classification" and self.label_smoothing != 0:
            return True, (f"label_smoothing={self.label_smoothing} smooths class labels; "
                          f"task={task!r} needs label_smoothing=0.")
        return False, None

    def trainer_options(self):
        if self.task != "classification":
            return {}
        return dict(label_smoothing=self.label_smoothing)
