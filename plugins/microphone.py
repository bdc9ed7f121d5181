"""Watch source ``mic``: an input device, through the hook any plugin uses to add a source.

``aetk watch mic`` listens to the default input device, ``aetk watch mic:NAME`` or ``mic:INDEX``
to a chosen one (``aetk watch --list-devices`` names them); ``--rate`` and ``--channels`` ask the
device for a format. Needs the ``watch`` extra (sounddevice and the PortAudio library). The
device is opened by :func:`aetk.open_input_device`, which aetk-runtime's ``watch mic`` opens too.
"""

from __future__ import annotations

import aetk


@aetk.hookimpl
def register_watch_sources(register):
    register("mic", aetk.open_input_device)
