"""Load the Revisited Oxford/Paris ground-truth pickles without letting them run code.

``pickle.load`` calls whatever global a file names (``os.system`` included). The restricted unpickler admits
only the globals that a ``gnd_*.pkl`` needs: numpy arrays, dtypes and scalars (plain lists, dicts, tuples,
strings and numbers need no global at all). Anything else is refused before it is called.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy >= 2 moved the pickling helpers to numpy._core and keeps numpy.core as a deprecated alias
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer  # type: ignore[attr-defined]
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]

# (module, name) as written in the pickle -> the object it stands for. Both numpy module spellings are listed:
# files written with numpy 1.x (and the Python 2-era originals) say numpy.core, files from numpy 2 numpy._core.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    # Pickle protocol 5 (the default from Python 3.14) rebuilds arrays from a byte buffer.
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    # Python 3 writes bytes (the raw data of an array) at protocol 2 as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``_ALLOWED_GLOBALS`` and refuses every other one."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ValueError(
                f"refusing to load global '{module}.{name}': only numpy arrays and plain containers are "
                "allowed in a ground-truth pickle"
            ) from None


def load_restricted_pickle(path: str | Path) -> Any:
    """Load a pickle that may only contain plain containers, strings, numbers and numpy arrays.

    Python 2 strings are decoded as latin-1, which is what numpy needs to rebuild arrays pickled by Python 2.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the pickle names a global outside the allowed set, or is truncated or corrupt.
    """
    path = Path(path)
    with path.open("rb") as file:
        try:
            return RestrictedUnpickler(file, encoding="latin1").load()
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(f"{path}: not a valid pickle ({type(error).__name__}: {error})") from error
