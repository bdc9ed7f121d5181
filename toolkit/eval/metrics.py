"""Detection metrics as DCASE Task 2 computes them (scikit-learn's ROC AUC and partial AUC)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_FPR = 0.1


def auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (1 = anomaly); ``None`` when only one class is present."""
    from sklearn.metrics import roc_auc_score

    classes = np.asarray(labels)
    if len(np.unique(classes)) < 2:
        return None
    return float(roc_auc_score(classes, np.asarray(scores, dtype=np.float64)))


def pauc(labels: Sequence[int], scores: Sequence[float], max_fpr: float = MAX_FPR) -> float | None:
    """Standardised partial AUC for false-positive rates up to ``max_fpr`` (McClish correction,
    as ``sklearn.metrics.roc_auc_score(max_fpr=...)`` and DCASE compute it)."""
    from sklearn.metrics import roc_auc_score

    classes = np.asarray(labels)
    if len(np.unique(classes)) < 2:
        return None
    return float(roc_auc_score(classes, np.asarray(scores, dtype=np.float64), max_fpr=max_fpr))
