"""aetk-runtime: score recordings with an exported aetk detector, without PyTorch.

import aetk_runtime
results = aetk_runtime.load("detector.onnx").score(["new.wav"])
"""

from aetk_runtime.detector import ExportedDetector, ScoreResult, load
from aetk_runtime.errors import AudioError, DetectorError, RuntimeUsageError

__version__ = "0.1.0"
__all__ = [
    "AudioError",
    "DetectorError",
    "ExportedDetector",
    "RuntimeUsageError",
    "ScoreResult",
    "__version__",
    "load",
]
