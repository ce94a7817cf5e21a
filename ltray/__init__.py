"""ltray: compare and tune long-tailed image classification methods at scale."""

from ltray.errors import LtrayError

__version__ = "0.1.0"
__all__ = ["LtrayError", "__version__"]
