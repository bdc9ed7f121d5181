"""aetk-runtime: score recordings with an exported aetk detector, without PyTorch.

import aetk_runtime
results = aetk_runtime.load("detector.onnx").score(["new.wav"])
row = aetk_runtime.load("detector.onnx").score_audio(samples, 16000)  # a recording in memory
rows = list(aetk_runtime.load_fleet("models/").iter_scores(["incoming/"]))  # a fleet's folder
"""

import os

# The runtime scores files on several threads of its own; a multithreaded BLAS under each of
# them fights for the same cores (one mel projection took 20 ms instead of 0.3 ms). Set before
# numpy loads, so it applies when aetk_runtime is imported first (as the console script does).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from aetk_core.errors import AudioError  # noqa: E402
from aetk_core.results import ScoreResult  # noqa: E402

from aetk_runtime.detector import ExportedDetector, load  # noqa: E402
from aetk_runtime.errors import DetectorError, RuntimeUsageError  # noqa: E402
from aetk_runtime.fleet import ExportedFleet, load_fleet  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "AudioError",
    "DetectorError",
    "ExportedDetector",
    "ExportedFleet",
    "RuntimeUsageError",
    "ScoreResult",
    "__version__",
    "load",
    "load_fleet",
]
