"""Exit statuses of every ``aetk`` command."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ANOMALY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
