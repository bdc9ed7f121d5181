"""Errors the runtime reports to users, each one line naming what went wrong."""

from __future__ import annotations


class RuntimeUsageError(Exception):
    """A bad option, or a detector the runtime cannot run (exit status 2)."""


class DetectorError(RuntimeUsageError):
    """The ONNX file is missing, foreign, or made for a featurizer the runtime does not know."""
