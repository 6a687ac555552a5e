"""Where the suite's data lives, and the error raised when it is missing.

Loaders never fail with a library's raw traceback when files are absent and the
machine is offline: they raise :class:`DataUnavailable`, whose one-line message
names the data set, the folder that was searched and how to provide the files.
A benchmark's Objective turns that message into a benchopt skip.
"""
import os
from pathlib import Path

DATA_ENV_VAR = "LEARNOPT_DATA"
DEFAULT_DATA_HOME = Path("~/.cache/learnopt-bench")


def data_home():
    """Return the root folder of downloaded and user-provided data sets.

    It is ``$LEARNOPT_DATA`` when that environment variable is set and not
    empty, else ``~/.cache/learnopt-bench``. The folder is not created here:
    loaders create what they download into, and a missing folder is reported
    by :class:`DataUnavailable` with its path.

    Returns
    -------
    pathlib.Path
        Absolute path, with ``~`` expanded.
    """
    configured = os.environ.get(DATA_ENV_VAR, "").strip()
    home = Path(configured) if configured else DEFAULT_DATA_HOME
    return home.expanduser().resolve()


class DataUnavailable(Exception):
    """A data set is neither on disk nor downloadable.

    The message is a single line, so that it reads well as a benchopt skip
    reason: it names the data set, the folder searched, and the files to put
    there (or the ``LEARNOPT_DATA`` variable to set).
    """

    def __init__(self, message):
        # Skip reasons and logs show one line; causes such as torchvision's
        # download errors span several, so whitespace runs are collapsed.
        super().__init__(" ".join(str(message).split()))
