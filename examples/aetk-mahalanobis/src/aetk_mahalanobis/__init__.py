"""aetk plugin: the ``mahalanobis`` scorer and the ``conv-ae`` model.

aetk finds this module through the ``aetk`` entry point in pyproject.toml. It imports no torch
at import time, so that ``aetk --help`` and ``aetk plugins`` stay fast.
"""

import aetk

from aetk_mahalanobis.conv_ae import ConvAE
from aetk_mahalanobis.scorer import MahalanobisScorer

__version__ = "0.1.0"
__all__ = ["ConvAE", "MahalanobisScorer"]


@aetk.hookimpl
def register_models(register):
    register(ConvAE)


@aetk.hookimpl
def register_scorers(register):
    register(MahalanobisScorer)
