"""Image classifiers of the sparse-training experiments of Bungert, Roith,
Tenbrinck & Burger, "A Bregman learning framework for sparse neural networks",
JMLR 2022, for inputs shaped ``(channels, height, width)``."""
import math
import numbers

import torchvision
from torch import nn

from .deep_mlp import DeepMLP
from .transformers import TRANSFORMER_CLASSES, TRANSFORMER_MODELS

MODELS = ("mlp", "convnet", "resnet18", *TRANSFORMER_MODELS, "mlp_deep")
# The options each transformer accepts (None: the model's default).
TRANSFORMER_OPTIONS = {
    "vit": ("width", "depth", "heads", "patch_size"),
    "crate": ("width", "depth", "heads", "patch_size", "eta", "lmbd"),
    "crate_alpha": ("width", "depth", "heads", "patch_size", "eta", "lmbd"),
}
# The options of every model that takes some.
MODEL_OPTIONS = {**TRANSFORMER_OPTIONS, "mlp_deep": ("width", "depth", "skip_connections")}


class MLP(nn.Sequential):
    """Fully connected ReLU network on flattened images, hidden layers of 200
    and 80 neurons by default: the MNIST network of Bungert et al. (2022),
    with no activation after the last (logits) layer."""

    def __init__(self, input_size, n_classes, hidden_sizes=(200, 80)):
        layers = [nn.Flatten()]
        sizes = [input_size, *hidden_sizes]
        for size_in, size_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(size_in, size_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], n_classes))
        super().__init__(*layers)


def convnet_feature_size(height, width, kernel_size=5):
    """Spatial size after ConvNet's two (convolution, 2 x 2 max-pooling)
    stages; 0 when the image is too small for them."""
    for _ in range(2):
        height, width = (height - kernel_size + 1) // 2, (width - kernel_size + 1) // 2
        if height < 1 or width < 1:
            return 0, 0
    return height, width


class ConvNet(nn.Sequential):
    """The Fashion-MNIST network of Bungert et al. (2022): two
    5 x 5 convolutions with 64 channels, each followed by 2 x 2 max-pooling
    and ReLU, then fully connected layers of 128 neurons and of the classes
    (on 28 x 28 images the features are 64 x 4 x 4)."""

    def __init__(self, input_shape, n_classes, channels=64, hidden_size=128):
        in_channels, height, width = input_shape
        feature_height, feature_width = convnet_feature_size(height, width)
        if feature_height == 0:
            raise ValueError(
                f"model='convnet' needs images of at least 16 x 16 pixels (two 5 x 5 "
                f"convolutions and two 2 x 2 poolings); got input_shape={input_shape}."
            )
        super().__init__(
            nn.Conv2d(in_channels, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(channels, channels, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * feature_height * feature_width, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, n_classes),
        )


def cifar_resnet18(input_shape, n_classes):
    """ResNet-18 (He, Zhang, Ren & Sun 2016, "Deep residual learning for image
    recognition", Table 1) in its CIFAR variant, as used by Bungert et al.
    (2022) on CIFAR-10: the 7 x 7 stride-2 stem and its max-pooling are
    replaced by one 3 x 3 stride-1 convolution, so that 32 x 32 images keep
    their resolution in the first stage."""
    model = torchvision.models.resnet18(num_classes=n_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _check_shape(input_shape, n_classes):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(
            isinstance(size, numbers.Integral) and size >= 1 for size in shape):
        raise ValueError(
            f"input_shape={input_shape!r} must be (channels, height, width), three "
            "positive integers."
        )
    if not isinstance(n_classes, numbers.Integral) or n_classes < 2:
        raise ValueError(f"n_classes={n_classes!r} must be an integer >= 2.")
    return tuple(int(size) for size in shape)


def build_model(name, input_shape, n_classes, **options):
    """The network ``name`` for images of shape ``input_shape``.

    Parameters
    ----------
    name : {"mlp", "convnet", "resnet18", "vit", "crate", "crate_alpha", "mlp_deep"}
    input_shape : (channels, height, width)
    n_classes : int >= 2
        The number of outputs: classes for a classifier, the pixels
        ``channels * height * width`` for a denoiser.
    **options
        Sizes of the transformers (:mod:`.transformers`): ``width``,
        ``depth``, ``heads``, ``patch_size``, and for ``crate`` and
        ``crate_alpha`` the ISTA step size ``eta`` and sparsity weight
        ``lmbd``. An option set to None takes the model's default (width 64,
        depth 4, 4 heads, the patch size of
        :func:`~.transformers.default_patch_size`, eta = lmbd = 0.1).
        ``mlp_deep`` (:class:`~.deep_mlp.DeepMLP`): ``width`` (default: the
        input's size), ``depth`` hidden layers (default 5, the six linear
        layers of Bungert et al.'s autoencoder) and ``skip`` (learnable
        scalar skip connections, default False).

    Returns
    -------
    torch.nn.Module
        Maps a batch ``(N, channels, height, width)`` to ``(N, n_classes)``.
        Its weights are torch's defaults, drawn from torch's global generator:
        call :func:`~solvers_common.models.sparse_initialization_` to draw them
        from a seeded one.

    Raises
    ------
    ValueError
        On an unknown model, a bad shape, an option the model does not take,
        or bad sizes (naming the parameter).
    """
    if name not in MODELS:
        raise ValueError(
            f"model={name!r} is unknown; accepted values: {', '.join(map(repr, MODELS))}."
        )
    input_shape = _check_shape(input_shape, n_classes)
    options = {key: value for key, value in options.items() if value is not None}
    accepted = MODEL_OPTIONS.get(name, ())
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"model={name!r} takes no option {', '.join(unknown)}; accepted options: "
            f"{', '.join(accepted) if accepted else 'none'}."
        )
    if name in TRANSFORMER_CLASSES:
        return TRANSFORMER_CLASSES[name](input_shape, int(n_classes), **options)
    if name == "mlp_deep":
        input_size = math.prod(input_shape)
        return DeepMLP(input_size, int(n_classes), **{"width": input_size, **options})
    if name == "mlp":
        return MLP(math.prod(input_shape), int(n_classes))
    if name == "convnet":
        return ConvNet(input_shape, int(n_classes))
    return cifar_resnet18(input_shape, int(n_classes))
