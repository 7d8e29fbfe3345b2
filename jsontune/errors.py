"""The one exception type a user sees as a sentence instead of a traceback."""


class JsontuneError(Exception):
    """A problem the user can fix: the message says what was wrong, where, and what to do."""
