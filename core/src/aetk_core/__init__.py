"""aetk-core: the rules aetk and aetk-runtime share, without PyTorch (see README.md)."""

__version__ = "0.1.0"
