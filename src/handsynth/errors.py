"""Errors shared by every stage."""


class UserError(Exception):
    """An error caused by the user's input; the CLI prints it as one sentence, without a traceback."""
