"""A watch of a folder or a stream, shared by ``aetk watch`` and ``aetk-runtime watch``: where it
listens (``sources``), its alerts, where its events go (``outputs``), the detector file read again
after a refit (``refit``), its events in words (``events``) and the loop that ties them
(``monitor``)."""
