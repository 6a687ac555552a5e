"""Image classifiers for sparse training and their seeded (sparse)
initialization: ``build_model(name, input_shape, n_classes)`` then
``sparse_initialization_(model, density, generator)``."""
from .initialization import STRUCTURES, check_density, sparse_initialization_
from .networks import MLP, MODELS, ConvNet, build_model, cifar_resnet18, convnet_feature_size

__all__ = [
    "MLP",
    "MODELS",
    "STRUCTURES",
    "ConvNet",
    "build_model",
    "check_density",
    "cifar_resnet18",
    "convnet_feature_size",
    "sparse_initialization_",
]
