"""Watch source ``mic``: an input device, through the hook any plugin uses to add a source.

``aetk watch mic`` listens to the default input device, ``aetk watch mic:NAME`` or ``mic:INDEX``
to a chosen one (``aetk watch --list-devices`` names them); ``--rate`` and ``--channels`` ask the
device for a format. Needs the ``watch`` extra (sounddevice and the PortAudio library).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np

    from aetk.watch.sources import StreamFormat


def open_device(
    address: str, rate: int | None, channels: int, stopping: Callable[[], bool]
) -> tuple[StreamFormat, Iterator[np.ndarray]]:
    """The device named or numbered by ``address`` (the default one when empty)."""
    from aetk.watch.sources import device_blocks

    return device_blocks(address or None, rate, channels, stopping)


@aetk.hookimpl
def register_watch_sources(register):
    register("mic", open_device)
