"""Data of the suite: where it lives, image loaders, patches and dictionaries.

See :mod:`.paths` for the data folder (``$LEARNOPT_DATA``) and the
:class:`DataUnavailable` error raised offline, :mod:`.images` for the loaders
and :mod:`.patches` for patch extraction and dictionary building.
"""
from .images import (
    IMAGE_SOURCES,
    load_digits_images,
    load_images,
    load_torchvision_images,
)
from .patches import DICTIONARY_METHODS, extract_patches, learn_dictionary
from .paths import DataUnavailable, data_home

__all__ = [
    "DICTIONARY_METHODS",
    "IMAGE_SOURCES",
    "DataUnavailable",
    "data_home",
    "extract_patches",
    "learn_dictionary",
    "load_digits_images",
    "load_images",
    "load_torchvision_images",
]
