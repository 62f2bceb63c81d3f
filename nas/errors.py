"""Error types shared by every mnv4-nas stage.

User mistakes (a malformed spec, an unknown target, a bad file) raise :class:`NasError` subclasses;
the CLI prints them as one line and exits with :attr:`NasError.exit_code`. Anything else is a bug.
"""

from __future__ import annotations


class NasError(Exception):
    """An error caused by user input (options, specs, files); shown to the user as one line."""

    exit_code: int = 2


class SpecError(NasError, ValueError):
    """An invalid architecture spec, block spec or DSL string (also a ``ValueError``)."""


class ConfigError(NasError, ValueError):
    """A malformed configuration or data file (names the file and the offending key)."""


class RuntimeCheckError(NasError):
    """A check on produced artefacts failed (e.g. ONNX output differs from torch)."""

    exit_code = 1
