"""The installed distribution's one top-level name.

In a checkout the project's packages are the top-level folders of the design card (``retrieval``, ``datamodules``,
``lightning_modules``, ``experiments``, ``serving``) and the apps are the scripts beside them. A wheel
(``pip install .``) places all of them under this package — ``landmark_retrieval.retrieval``, … — with the
configs in ``landmark_retrieval/conf``, so that installing it claims no generic top-level name (see ``setup.py``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("landmark-retrieval")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
