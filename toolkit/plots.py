"""PNG plots with matplotlib (headless Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_curve(
    path: Path, labels: Sequence[int], scores: Sequence[float], title: str, max_fpr: float = 0.1
) -> Path:
    """ROC curve with its AUC, the partial-AUC region shaded."""
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as compute_roc

    plt = _pyplot()
    fpr, tpr, _ = compute_roc(labels, scores)
    auc = roc_auc_score(labels, scores)
    figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    axes.axvspan(0, max_fpr, color="0.92", label=f"pAUC region (FPR ≤ {max_fpr})")
    axes.plot(fpr, tpr, color="C3", lw=2, label=f"AUC {auc:.3f}")
    axes.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--")
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
    )
    axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def score_histogram(
    path: Path, normal: Sequence[float], anomalous: Sequence[float], threshold: float, title: str
) -> Path:
    """Histograms of normal and anomalous scores with the threshold as a vertical line."""
    plt = _pyplot()
    values = np.concatenate([np.asarray(normal, float), np.asarray(anomalous, float), [threshold]])
    bins = np.linspace(values.min(), values.max(), 31) if np.ptp(values) > 0 else 10
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    if len(normal):
        axes.hist(normal, bins=bins, alpha=0.6, color="C0", label=f"normal ({len(normal)})")
    if len(anomalous):
        axes.hist(
            anomalous, bins=bins, alpha=0.6, color="C3", label=f"anomalous ({len(anomalous)})"
        )
    axes.axvline(threshold, color="k", ls="--", lw=1.5, label=f"threshold {threshold:.4g}")
    axes.set(xlabel="anomaly score (higher is more anomalous)", ylabel="clips", title=title)
    axes.legend(fontsize=8)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
    return path
