from benchopt import BaseDataset

from solvers_common.data import DataUnavailable
from solvers_common.data.restoration import load_restoration_images
from solvers_common.inverse_problems import check_degradation
from solvers_common.seeding import numpy_generator


class Dataset(BaseDataset):
    """Clean training and test images and a degradation to undo.

    ``source``: ``skimage`` (crops of scikit-image's bundled test images),
    ``faces`` (scikit-image's 25 x 25 LFW faces, the offline stand-in for
    CelebA-HQ), ``digits`` (scikit-learn's 8 x 8), all offline; ``mnist``,
    ``bsds500`` and ``celeba_hq`` read from ``$LEARNOPT_DATA`` and are skipped
    with a one-line message when absent (see
    :mod:`solvers_common.data.restoration`). ``degradation``: ``inpainting``
    (random pixels, a fraction ``mask_ratio`` missing), ``inpainting_center``
    (a centred hole of area ``mask_ratio``), ``blur`` (Gaussian, ``blur_sigma``
    pixels) or ``denoising``; then Gaussian noise of level ``noise_level``.

    ``n_validation`` validation images, disjoint from the training and the
    test ones (crops of a band of each training picture that no training crop
    touches, or held-out images that are not test images: see
    :func:`solvers_common.data.restoration.load_restoration_images`), for
    choosing hyperparameters; the objective scores them beside the test ones.
    """

    name = "images"
    requirements = ["pip::scikit-image", "pip::deepinv", "pip::normflows", "pip::numpy",
                    "pip::pillow", "pip::scikit-learn", "pip::torch", "pip::torchvision"]
    parameters = {
        "source": ["skimage"],
        "crop_size": [32],
        "n_train": [64],
        "n_test": [8],
        "n_validation": [4],
        "color": [False],
        "degradation": ["inpainting"],
        "mask_ratio": [0.5],
        "noise_level": [0.02],
        "blur_sigma": [1.0],
    }
    test_parameters = {
        "source": ["digits", "skimage"],
        "crop_size": [8],
        # 16: the stand-in of tests/test_configs.py trains with batches of 12.
        "n_train": [16],
        "n_test": [2],
        "degradation": ["inpainting", "blur"],
    }

    def get_data(self):
        check_degradation(self.degradation, self.mask_ratio, self.noise_level, self.blur_sigma)
        try:
            images = load_restoration_images(
                self.source, self.crop_size, self.n_train, self.n_test, color=self.color,
                generator=numpy_generator(self.get_seed(use_repetition=True)),
                n_validation=self.n_validation)
        except DataUnavailable as error:
            return dict(unavailable=str(error))
        return dict(train_images=images.train, test_images=images.test,
                    validation_images=images.validation, degradation=self.degradation,
                    mask_ratio=self.mask_ratio, noise_level=self.noise_level,
                    blur_sigma=self.blur_sigma)
