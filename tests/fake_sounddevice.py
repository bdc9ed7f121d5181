"""sounddevice replaced at its boundary, for the watches' device tests (CI has no microphone):
an input stream that plays given samples into its callback in blocks of 0.1 s, then stops the
watch with SIGTERM. Needs numpy alone, so that aetk-runtime's environment imports it too."""

from __future__ import annotations

import os
import signal
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

#: What --list-devices prints from it.
DEVICES = "> 0 the line-in, ALSA (2 in, 0 out)"


def playing(samples: np.ndarray, rate: int) -> Any:
    """A stand-in for the sounddevice module whose input stream plays ``samples`` (mono, at
    ``rate``); its ``opened`` lists how each stream was asked for (device, channels, rate,
    sample type)."""
    opened: list[dict[str, Any]] = []

    class InputStream:
        def __init__(self, *, device, channels, samplerate, dtype, callback):
            opened.append({"device": device, "format": [channels, samplerate, dtype]})
            self.callback = callback

        def __enter__(self):
            block = rate // 10
            for start in range(0, len(samples), block):
                part = samples[start : start + block, None].astype(np.float32)
                self.callback(part, len(part), None, None)
            threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
            return self

        def __exit__(self, *exc_info):
            return False

    def query_devices(device=None, kind=None):
        return DEVICES if kind is None else {"default_samplerate": rate}

    return SimpleNamespace(InputStream=InputStream, query_devices=query_devices, opened=opened)
