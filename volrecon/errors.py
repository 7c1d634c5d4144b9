"""The one exception family for problems a user can fix.

Every message names the file, slice or parameter at fault and says what to do about it.
The CLI prints the message on one line and exits with code 2; any other exception is a bug.
"""

from __future__ import annotations


class VolreconError(Exception):
    """Base class of every error a user can fix (bad input, bad parameter, existing output)."""


class InputError(VolreconError):
    """An input file or folder cannot be used as given (missing, unreadable, inconsistent)."""


class ParameterError(VolreconError, ValueError):
    """A parameter value is out of range, has unknown units, or contradicts another one."""


class OutputError(VolreconError):
    """An output location cannot be written (exists without ``--overwrite``, read-only, inside input)."""


class MetadataError(VolreconError):
    """Instrument metadata is present but contradicts itself or the user's overrides."""
