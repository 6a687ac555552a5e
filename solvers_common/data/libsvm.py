"""LIBSVM data sets through libsvmdata, with an offline error.

libsvmdata keeps its files as ``<name>_X.npy`` (or ``.npz`` when sparse) and
``<name>_y.npy`` under ``$LIBSVMDATA_HOME/libsvm/`` (``$XDG_DATA_HOME/libsvm``
or ``~/data/libsvm`` when unset) and downloads them when missing. The folder
is read from the environment at each call (libsvmdata itself reads it once,
at import), so tests and users can point it elsewhere at run time.
"""
import copy
import os
import socket
from pathlib import Path

import numpy as np
from libsvmdata.core import ALL_DATASETS
from scipy import sparse

from .paths import DataUnavailable

# Bounds each connect and read of a download, so an offline machine whose
# network drops packets fails in seconds instead of the TCP timeout.
DOWNLOAD_TIMEOUT_SECONDS = 20


def libsvm_home():
    """The folder libsvmdata reads and downloads into, from the environment."""
    for variable in ("LIBSVMDATA_HOME", "XDG_DATA_HOME"):
        value = os.environ.get(variable, "").strip()
        if value:
            return Path(value).expanduser() / "libsvm"
    return Path.home() / "data" / "libsvm"


def load_libsvm(name, dense=True):
    """(X, y) of the LIBSVM data set ``name`` as dense float64 numpy arrays
    (``dense=False``: X as a scipy CSR matrix when stored sparse).

    Raises
    ------
    ValueError
        If ``name`` is not a data set libsvmdata knows.
    DataUnavailable
        If the files are neither on disk nor downloadable; the message says
        which files to put where.
    """
    if name not in ALL_DATASETS:
        raise ValueError(f"name={name!r} is not a libsvmdata data set "
                         "(see libsvmdata.print_supported_datasets()).")
    dataset = copy.copy(ALL_DATASETS[name])
    dataset.dataset_dir = libsvm_home()
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        X, y = dataset.get_X_y()
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        raise DataUnavailable(
            f"{name} (LIBSVM): files not found in {dataset.dataset_dir} and download "
            f"failed ({reason}); put {name}_X.npy (or .npz) and {name}_y.npy there, "
            "or set LIBSVMDATA_HOME to a folder whose libsvm/ subfolder holds them"
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    if sparse.issparse(X):
        X = X.toarray() if dense else sparse.csr_matrix(X)
    else:
        X = np.asarray(X)
    return X.astype(np.float64), np.asarray(y, dtype=np.float64)
