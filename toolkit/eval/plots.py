"""Figures with matplotlib (headless Agg backend): build a figure, then save it or embed it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aetk.detect.explanation import Explanation


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` as a PNG file and close it."""
    from aetk_core.fileio import atomic_write_bytes

    return atomic_write_bytes(path, png(figure))


def png(figure: Any) -> bytes:
    """``figure`` as PNG bytes; the figure is closed."""
    plt = pyplot()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def roc_curve(labels: Sequence[int], scores: Sequence[float], title: str, max_fpr: float = 0.1):
    """ROC curve with its AUC, the partial-AUC region shaded."""
    from sklearn.metrics import roc_curve as compute_roc

    from aetk.eval import metrics

    plt = pyplot()
    fpr, tpr, _ = compute_roc(labels, scores)
    auc = metrics.auc(labels, scores) or 0.5
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
    return figure


def score_histogram(
    normal: Sequence[float],
    anomalous: Sequence[float],
    threshold: float,
    title: str,
    *,
    labelled: bool = True,
):
    """Histograms of normal and anomalous scores with the threshold as a vertical line; not
    ``labelled``, ``normal`` holds every score, whatever its recording is, and is named so."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    values = np.concatenate([np.asarray(normal, float), np.asarray(anomalous, float), [threshold]])
    bins = np.linspace(values.min(), values.max(), 31) if np.ptp(values) > 0 else 10
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    if len(normal):
        name = "normal" if labelled else "recordings"
        axes.hist(normal, bins=bins, alpha=0.6, color="C0", label=f"{name} ({len(normal)})")
    if len(anomalous):
        axes.hist(
            anomalous, bins=bins, alpha=0.6, color="C3", label=f"anomalous ({len(anomalous)})"
        )
    axes.axvline(threshold, color="k", ls="--", lw=1.5, label=f"threshold {threshold:.4g}")
    axes.set(xlabel="anomaly score (higher is more anomalous)", ylabel="clips", title=title)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.25 of a clip
    axes.legend(fontsize=8)
    return figure


def loss_curves(train_loss: Sequence[float], val_loss: Sequence[float | None], title: str):
    """Training and validation loss per epoch (log scale)."""
    plt = pyplot()
    epochs = np.arange(1, len(train_loss) + 1)
    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    axes.plot(epochs, train_loss, marker=".", label="training")
    if any(value is not None for value in val_loss):
        values = [np.nan if value is None else value for value in val_loss]
        axes.plot(epochs, values, marker=".", label="validation")
    axes.set(yscale="log", xlabel="epoch", ylabel="loss", title=title)
    axes.legend(fontsize=8)
    return figure


def explanation(explained: Explanation, title: str):
    """Input spectrogram, reconstruction (if any), error map with events, and score curve."""
    plt = pyplot()
    errors = explained.errors
    edges = errors.layout.band_edges_hz
    duration = errors.contributions.shape[1] * errors.layout.frame_seconds
    extent = (0.0, duration, 0.0, len(edges))
    panels = [("input log-mel (dB)", explained.spectrogram, "magma")]
    if explained.reconstruction is not None:
        panels.append(("reconstruction (dB)", explained.reconstruction, "magma"))
    panels.append(("error map (contribution to the score)", errors.contributions, "viridis"))
    figure, axes = plt.subplots(
        len(panels) + 1, 1, figsize=(8, 2.1 * (len(panels) + 1)), dpi=100, sharex=True
    )
    ticks = np.linspace(0, len(edges) - 1, 5).astype(int)
    for axis, (label, grid, colours) in zip(axes, panels, strict=False):
        image = axis.imshow(
            grid,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap=colours,
            interpolation="nearest",
        )
        axis.set_yticks(ticks + 0.5, [_khz(edges[t][0]) for t in ticks])
        axis.set(ylabel="mel band", title=label)
        figure.colorbar(image, ax=axis, pad=0.01)
        for event in (event for event in errors.events if not event.whole_clip):
            axis.axvspan(event.start, event.end, color="white", alpha=0.18, lw=0)
            axis.axvline(event.start, color="white", lw=0.8, ls="--")
            axis.axvline(event.end, color="white", lw=0.8, ls="--")
    _score_curve(axes[-1], errors, duration)
    # An invisible colour bar keeps the curve's time axis aligned with the images above it.
    figure.colorbar(image, ax=axes[-1], pad=0.01).ax.set_visible(False)
    figure.suptitle(title, fontsize=10)
    return figure


def _score_curve(curve, errors, duration: float) -> None:
    """Each vector's score over time against the event threshold, the events shaded."""
    centres = [(start + end) / 2 for start, end in errors.vector_spans]
    curve.plot(centres, errors.vector_scores, color="C0", lw=1.2, label="score per vector")
    curve.axhline(
        errors.event_threshold,
        color="C3",
        ls="--",
        lw=1.2,
        label=f"event threshold {errors.event_threshold:.3g}",
    )
    # An event of the whole clip is not a moment above the event line: it is not shaded.
    moments = [event for event in errors.events if not event.whole_clip]
    for event in moments:
        curve.axvspan(event.start, event.end, color="C3", alpha=0.15, lw=0)
    title = "score over time"
    if len(moments) < len(errors.events):
        title += ": no moment stands out, the whole clip departs from normal"
    curve.set(xlabel="time (s)", ylabel="score", title=title, xlim=(0, duration))
    # Room above the curve and the event line for the legend, which would otherwise hide the
    # line where no moment comes near it.
    low, high = curve.get_ylim()
    curve.set_ylim(low, high + 0.3 * (high - low))
    curve.legend(fontsize=8, loc="upper right", ncols=2)


def _khz(hertz: float) -> str:
    return f"{hertz / 1000:.1f}k" if hertz >= 1000 else f"{hertz:.0f}"
