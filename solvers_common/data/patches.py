"""Image patches and dictionaries for sparse coding.

The setting of learned sparse coding on natural image patches (Gregor and
LeCun, "Learning Fast Approximations of Sparse Coding", ICML 2010; Ablin et
al., "Learning step sizes for unfolded sparse coding", NeurIPS 2019): signals
are small gray patches, centered and scaled to unit norm, and the dictionary is
either learned on training patches (Mairal et al., "Online Dictionary Learning
for Sparse Coding", ICML 2009) or made of training patches themselves.
"""
import numbers
import warnings

import numpy as np
import torch
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning

from ..seeding import numpy_generator

# Centered patches whose norm is below this are flat background and are never
# sampled: normalizing them would divide by (almost) zero. It lies below the
# smallest contrast of an 8-bit image scaled to [0, 1] (one gray level of a
# channel mean, 1 / 765, on one pixel gives a norm above 1.3e-3), so every
# patch that is not exactly flat is kept.
MIN_PATCH_NORM = 1e-3

DICTIONARY_METHODS = ("dictionary_learning", "random_patches")


def _as_numpy_generator(generator):
    """A ``numpy.random.Generator`` from a seed, a numpy generator (returned
    as is, so draws continue its stream) or a ``torch.Generator`` (which seeds
    a numpy one with one draw)."""
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        seed = torch.randint(2**62, (1,), generator=generator).item()
        return numpy_generator(seed)
    if isinstance(generator, numbers.Integral):
        return numpy_generator(generator)
    raise ValueError(
        f"generator={generator!r} is not a source of randomness; accepted values: "
        "an integer seed, a numpy.random.Generator or a torch.Generator."
    )


def _check_positive_integer(name, value):
    if not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer.")


def _centered_patches(images, positions, patch_size, n_rows, n_columns):
    """Gray, flattened, centered patches at linear ``positions``, where
    position ``(i * n_rows + r) * n_columns + c`` is the patch of image ``i``
    whose top-left pixel is ``(r, c)``."""
    image_index, offset = np.divmod(positions, n_rows * n_columns)
    row, column = np.divmod(offset, n_columns)
    span = np.arange(patch_size)
    patches = images[
        image_index[:, None, None],
        (row[:, None] + span)[:, :, None],
        (column[:, None] + span)[:, None, :],
    ].astype(np.float64)
    if patches.ndim == 4:
        patches = patches.mean(axis=-1)
    patches = patches.reshape(len(positions), patch_size * patch_size)
    return patches - patches.mean(axis=1, keepdims=True)


def extract_patches(
    images, patch_size, n_patches, generator, *, min_norm=MIN_PATCH_NORM
):
    """Draw random square patches, centered and normalized.

    Each patch is a ``patch_size x patch_size`` window of one image, converted
    to gray (mean over channels for color images), flattened row-major,
    centered (its mean subtracted) and divided by its l2 norm. Windows whose
    centered norm is at most ``min_norm`` (flat background) are excluded
    before sampling. Among the remaining windows the draw is uniform without
    replacement; when fewer than ``n_patches`` remain (for instance 8 x 8
    patches of 8 x 8 images), every one of them is used as evenly as possible:
    each appears ``floor`` or ``ceil`` of ``n_patches / n_valid`` times.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, H, W) or (N, H, W, C)
    patch_size : int
        Side of the square patches, at most ``min(H, W)``.
    n_patches : int
        Number of patches returned.
    generator : int | numpy.random.Generator | torch.Generator
        Source of randomness (a numpy generator's stream is advanced).
    min_norm : float
        Centered patches with a norm at most this are discarded.

    Returns
    -------
    numpy.ndarray, float64, shape (n_patches, patch_size ** 2)
        Rows have zero mean and unit l2 norm.

    Raises
    ------
    ValueError
        On bad shapes or sizes, or when every window is flat.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images of shape {images.shape} must be (N, H, W) or (N, H, W, C)."
        )
    _check_positive_integer("patch_size", patch_size)
    _check_positive_integer("n_patches", n_patches)
    n_images, height, width = images.shape[:3]
    if patch_size > min(height, width):
        raise ValueError(
            f"patch_size={patch_size} exceeds the images' size {height} x {width}."
        )
    if n_images == 0:
        raise ValueError("images is empty: there is no patch to draw.")
    rng = _as_numpy_generator(generator)

    n_rows, n_columns = height - patch_size + 1, width - patch_size + 1
    n_positions = n_images * n_rows * n_columns
    # Windows are examined in a uniformly random order, a few times more than
    # needed since some are flat; the first n_patches valid ones of that order
    # are a uniform draw without replacement among all valid windows. When too
    # few of the examined windows are valid, examine more, up to all of them.
    n_examined = min(n_positions, 2 * n_patches)
    while True:
        positions = rng.choice(n_positions, size=n_examined, replace=False)
        patches = _centered_patches(images, positions, patch_size, n_rows, n_columns)
        norms = np.linalg.norm(patches, axis=1)
        valid = np.flatnonzero(norms > min_norm)
        if valid.size >= n_patches:
            chosen = valid[:n_patches]
            break
        if n_examined == n_positions:
            if valid.size == 0:
                raise ValueError(
                    f"all {n_positions} patches of size {patch_size} are flat "
                    f"(centered norm at most min_norm={min_norm})."
                )
            # Fewer valid windows than requested: independent permutations of
            # all of them, back to back, repeat each as evenly as possible.
            n_rounds = -(-n_patches // valid.size)
            order = np.argsort(rng.random((n_rounds, valid.size)), axis=1)
            chosen = valid[order].ravel()[:n_patches]
            break
        n_examined = min(n_positions, 4 * n_examined)
    return patches[chosen] / norms[chosen, None]


def learn_dictionary(
    patches, n_atoms, method, seed, *, alpha=0.1, max_iter=3, batch_size=256
):
    """Build a dictionary of ``n_atoms`` unit-norm atoms for ``patches``.

    Parameters
    ----------
    patches : numpy.ndarray, shape (N, n)
        Training signals, one per row (for instance from
        :func:`extract_patches`).
    n_atoms : int
        Number of atoms ``m``.
    method : {"dictionary_learning", "random_patches"}
        ``"dictionary_learning"``: scikit-learn's
        ``MiniBatchDictionaryLearning`` (Mairal et al. 2009), which minimizes
        ``0.5 ||X - Z D^T||_F^2 + alpha ||Z||_1`` over codes ``Z`` and atoms of
        norm at most one, for ``max_iter`` passes over ``patches``.
        ``"random_patches"``: ``n_atoms`` distinct training patches drawn
        uniformly without replacement.
    seed : int
        Seed of the method's randomness.
    alpha : float
        l1 weight of dictionary learning. For unit-norm patches and atoms the
        codes are all zero from ``alpha = 1`` on; a tenth of that gives sparse
        but informative codes.
    max_iter : int
        Passes over ``patches`` of dictionary learning; a few suffice for a
        usable dictionary and keep the fit to seconds for thousands of patches.
    batch_size : int
        Patches per step of dictionary learning.

    Returns
    -------
    numpy.ndarray, float64, shape (n, n_atoms)
        The dictionary ``D``, one atom per column, each of unit l2 norm.

    Raises
    ------
    ValueError
        On an unknown ``method``, a non-positive ``n_atoms``, or (for
        ``"random_patches"``) fewer distinct patches than ``n_atoms``.
    """
    if method not in DICTIONARY_METHODS:
        raise ValueError(
            f"method={method!r} is not a dictionary method; accepted values: "
            f"{', '.join(map(repr, DICTIONARY_METHODS))}."
        )
    _check_positive_integer("n_atoms", n_atoms)
    patches = np.asarray(patches, dtype=np.float64)
    if patches.ndim != 2:
        raise ValueError(f"patches of shape {patches.shape} must be (N, n).")

    if method == "dictionary_learning":
        # Coordinate descent codes a batch several times faster than LARS here.
        model = MiniBatchDictionaryLearning(
            n_components=n_atoms,
            alpha=alpha,
            max_iter=max_iter,
            batch_size=batch_size,
            fit_algorithm="cd",
            random_state=int(seed) % 2**32,
        )
        with warnings.catch_warnings():
            # Each step's codes come from a Lasso solved to a 1e-8 duality gap
            # that coordinate descent often misses by a little; the dictionary
            # only needs approximate codes, and the warnings would flood runs.
            warnings.simplefilter("ignore", ConvergenceWarning)
            atoms = model.fit(patches).components_
    else:
        # Patches may repeat (extract_patches reuses them when few are valid);
        # a repeated atom would make the dictionary's coherence one.
        distinct = np.unique(patches, axis=0)
        if len(distinct) < n_atoms:
            raise ValueError(
                f"n_atoms={n_atoms} exceeds the {len(distinct)} distinct training "
                "patches that method='random_patches' draws atoms from."
            )
        rng = numpy_generator(seed)
        atoms = distinct[rng.choice(len(distinct), size=n_atoms, replace=False)]

    dictionary = np.array(atoms.T, dtype=np.float64, order="C")
    dictionary /= np.linalg.norm(dictionary, axis=0, keepdims=True)
    return dictionary
