"""Errors a caller can see: ``APIError`` for an answer mParticle refused."""

from __future__ import annotations

import json
from typing import Any, Optional


class APIError(Exception):
    """mParticle answered a request with an error status.

    ``code`` and ``message`` come from mParticle's error body
    ``{"errors": [{"code": ..., "message": ...}]}`` (the first error); when the
    body is not that shape, ``code`` is ``"unknown"`` and ``message`` is the
    response text. ``response`` is the ``requests.Response`` when there was one.
    """

    def __init__(self, status: int, code: str, message: str, response: Optional[Any] = None):
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.response = response

    def __str__(self) -> str:
        return f"[mParticle] {self.code}: {self.message} ({self.status})"

    @classmethod
    def from_body(cls, status: int, body: str, response: Optional[Any] = None) -> APIError:
        """Build the error from a response body, whatever its shape."""
        try:
            first = json.loads(body)["errors"][0]
            code, message = first["code"], first["message"]
            if isinstance(code, str) and isinstance(message, str):
                return cls(status, code, message, response)
        except (ValueError, LookupError, TypeError):
            pass
        return cls(status, "unknown", body, response)


class DeliveryError(Exception):
    """Events given up for a reason other than mParticle's answer.

    Passed to ``on_error`` when events are too large for any batch, are still
    unsent when a shutdown deadline passes, or are too recent for the
    historical endpoint. ``reason`` is the same word ``Client.stats()`` counts.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"[mParticle] {self.reason}: {self.message}"
