"""Exceptions for user mistakes: the CLI prints them as one line, no traceback."""


class LpcnetError(Exception):
    """A user-facing error (bad input file, bad flag); message is one line."""


class FormatError(LpcnetError, ValueError):
    """A file is missing, empty, truncated, of the wrong size or holds bad values."""


class AudioError(LpcnetError):
    """Audio that cannot be read or is unusable (silent, wrong rate where fixed)."""


class LpcnetWarning(UserWarning):
    """Input that is usable but suspicious (e.g. clipped samples); the CLI prints it as one line."""
