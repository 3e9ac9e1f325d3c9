"""The one exception type a user can cause.

Library code raises `XltError` with a message that names the problem and the fix; the CLI prints it
without a traceback and exits non-zero. Anything else escaping is a bug and keeps its traceback.
"""


class XltError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""
