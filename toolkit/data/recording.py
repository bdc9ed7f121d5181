"""The band a featurizer analyses, which the recording checks compare a recording's band with
(the checks themselves are aetk-core's, shared with aetk-runtime: :mod:`aetk_core.recording`)."""

from __future__ import annotations

from typing import Any


def analysis_rate(featurizer: Any) -> int | None:
    """The sample rate ``featurizer`` analyses at, when its parameters say one."""
    rate = featurizer.get_params().get("sample_rate")
    return rate if isinstance(rate, int) and not isinstance(rate, bool) else None


def analysed_hz(featurizer: Any) -> float | None:
    """The top of the band ``featurizer`` analyses: its highest band's upper edge, or half its
    sample rate; None when it says neither."""
    layout = featurizer.layout()
    if layout is not None and layout.band_edges_hz:
        return float(layout.band_edges_hz[-1][1])
    rate = analysis_rate(featurizer)
    return rate / 2 if rate is not None else None
