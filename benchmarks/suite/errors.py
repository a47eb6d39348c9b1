"""User-facing errors.

A ``UserError`` is a mistake the user can fix (unknown table, bad flag, missing data). The CLI
prints its message as one line and exits with status 2; it never shows a traceback.
"""


class UserError(Exception):
    """A problem in the user's input; the message names the problem and the fix."""


class SpecError(UserError):
    """A malformed table spec."""


class DataError(UserError):
    """A dataset that is missing, corrupt or not allowed at the requested scale."""
