"""Exceptions that carry a one-line message for the user.

The CLI turns them into ``Error: <message>`` and their exit code; the library raises
them so that scripts get the same words. A per-sample problem (a bad image in a dataset)
is not an exception at all: it is a row with a status and a reason (see ``engine``).
"""


class AugkitError(Exception):
    """A failure the user can act on; exit code 1."""

    exit_code = 1


class UsageError(AugkitError):
    """Bad usage: a wrong argument, path or option combination; exit code 2."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe that cannot be built as written. The message names file, line and fix."""
