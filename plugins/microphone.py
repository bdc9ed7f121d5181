"""Watch source ``mic``: an input device, through the hook any plugin uses to add a source.

``aetk watch mic`` listens to the default input device, ``aetk watch mic:NAME`` or ``mic:INDEX``
to a chosen one (``aetk watch --list-devices`` names them); ``--rate`` and ``--channels`` ask the
device for a format. Needs the ``watch`` extra (sounddevice and the PortAudio library).
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np

#: Blocks waiting for the monitor (0.1-s blocks: 100 s of sound) before the device's thread waits.
QUEUED_BLOCKS = 1000


def open_device(
    address: str, rate: int | None, channels: int, stopping: Callable[[], bool]
) -> tuple[aetk.StreamFormat, Iterator[np.ndarray]]:
    """Blocks from the input device named or numbered by ``address`` (the default one when
    empty), through sounddevice's input stream, until ``stopping()``."""
    import numpy as np

    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise aetk.ConfigError(
            f"listening to a device needs sounddevice (pip install 'aetk[watch]'): {exc}"
        ) from None
    chosen: int | str | None = int(address) if address.isdigit() else address or None
    try:
        info = sounddevice.query_devices(chosen, "input")
    except Exception as exc:  # sounddevice raises ValueError or its PortAudioError
        raise aetk.ConfigError(f"no input device {address!r} ({exc})") from None
    rate = rate or int(info["default_samplerate"])
    blocks: queue.Queue = queue.Queue(maxsize=QUEUED_BLOCKS)

    def callback(data, frames, timing, status) -> None:
        blocks.put(np.ascontiguousarray(data.T, dtype=np.float32).copy())

    stream = sounddevice.InputStream(
        device=chosen, channels=channels, samplerate=rate, dtype="float32", callback=callback
    )

    def generate() -> Iterator[np.ndarray]:
        with stream:
            while not stopping():
                try:
                    yield blocks.get(timeout=0.5)
                except queue.Empty:
                    continue

    return aetk.StreamFormat(rate, channels, "<f4", 1.0), generate()


@aetk.hookimpl
def register_watch_sources(register):
    register("mic", open_device)
