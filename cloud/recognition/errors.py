"""Errors of the recognisers."""

from __future__ import annotations

from shared.errors import DepotwatchError


class RecognitionModelError(DepotwatchError):
    """A recognition model cannot be loaded or compiled: missing or invalid IR, unknown device."""


class BadThumbnail(DepotwatchError):
    """A thumbnail that cannot be recognised: not a JPEG, empty, too large, not a picture."""
