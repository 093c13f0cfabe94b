"""Errors that reach the operator as one line and exit code 2, never a traceback."""

from __future__ import annotations


class CabinwatchError(Exception):
    """A problem the user can fix: bad input, a missing file, a bad option."""

    exit_code = 2


class InputFileError(CabinwatchError):
    """A file that cannot be opened or read."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class ConfigError(CabinwatchError):
    """A mistake in a configuration or scenario file: names the file, the key and the problem."""

    def __init__(self, path: str, key: str, problem: str):
        super().__init__(f"{path}: {key}: {problem}")
        self.path = path
        self.key = key
        self.problem = problem
