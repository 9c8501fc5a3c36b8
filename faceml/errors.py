"""Errors meant for the user: one clear line, never a traceback.

Pages show them with ``st.error``; the CLI prints them and exits with code 2.
"""


class FaceMLError(Exception):
    """A problem the user can fix (bad path, bad option, unusable file)."""


class DataError(FaceMLError):
    """A dataset cannot be read as asked."""


class ConfigError(FaceMLError):
    """A configuration (architecture, heads, hyperparameters) is invalid."""
