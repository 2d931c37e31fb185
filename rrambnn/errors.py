class RrambnnError(Exception):
    """A user-facing error: the CLI prints its message as one line, never a traceback."""
