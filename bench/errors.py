"""Errors the CLI turns into one-line messages and exit codes."""


class UsageError(Exception):
    """Bad usage or bad input: the CLI prints the message and exits 2."""


class MeasurementError(Exception):
    """A measurement could not be taken; recorded as a sample with ok=False."""
