"""Image classifiers (and denoisers) for sparse training and their seeded
(sparse) initialization: ``build_model(name, input_shape, n_classes,
**options)`` then ``sparse_initialization_(model, density, generator)``. The
transformers (``vit``, ``crate``, ``crate_alpha``) are in :mod:`.transformers`,
the deep fully connected ``mlp_deep`` in :mod:`.deep_mlp`."""
from .deep_mlp import DeepMLP, ScalarSkips
from .initialization import STRUCTURES, check_density, sparse_initialization_
from .networks import MLP, MODELS, ConvNet, build_model, cifar_resnet18, convnet_feature_size
from .transformers import (
    CRATE,
    TRANSFORMER_MODELS,
    CRATEAlpha,
    VisionTransformer,
    default_patch_size,
)

__all__ = [
    "CRATE",
    "MLP",
    "MODELS",
    "STRUCTURES",
    "TRANSFORMER_MODELS",
    "CRATEAlpha",
    "ConvNet",
    "DeepMLP",
    "ScalarSkips",
    "VisionTransformer",
    "build_model",
    "check_density",
    "cifar_resnet18",
    "convnet_feature_size",
    "default_patch_size",
    "sparse_initialization_",
]
