"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A mistake in what the user gave (a flag, a path, a file): one line, exit code 2, no traceback."""
