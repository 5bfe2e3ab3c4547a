"""Errors a user can cause. Each names the thing at fault and how to fix it."""

from __future__ import annotations


class VerticalsError(Exception):
    """Base class for errors that are the user's to fix (bad file, bad request, missing model)."""


class DataError(VerticalsError):
    """A data file cannot be read or does not match its schema."""


class ModelUnavailableError(VerticalsError):
    """A model name cannot be resolved to weights (offline, misspelt, or missing locally)."""


class ArtifactError(VerticalsError):
    """An artifact folder is missing, incomplete, or was written by an incompatible version."""


class InputError(VerticalsError):
    """A request or prediction input is invalid; services answer it with a 4xx, never a 500."""

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code
