"""The package's version, read from the installed metadata (``0.0.0+unknown`` when running
from a source tree that is not installed). A module of its own so that the package's modules
import it without importing the package's ``__init__`` (which imports the archive and refit
APIs)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wmass-archive")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
