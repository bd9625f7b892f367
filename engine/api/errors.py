"""Errors as the API answers them: always `{"error": "..."}` JSON, never a stack trace.

`ApiError` is what routes raise; the app's exception handlers (engine/api/app.py) and the
idempotent `mutate` helper (engine/api/mutations.py) turn it into a response.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message}, self.status, headers=self.headers)


class ErrorBody(BaseModel):
    error: str


def error_doc(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an error answered with `ErrorBody`."""
    return {"model": ErrorBody, "description": description}


# Every mutation can be refused for these reasons before it reaches the runtime.
MUTATION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_doc("No or an unknown bearer token (`WWW-Authenticate: Bearer`)."),
    403: error_doc("A read-only token."),
    413: error_doc("Request body too large."),
    422: error_doc("Invalid body, parameters, or an Idempotency-Key reused for another request."),
    429: error_doc(
        "Rate limited, or too many failed authentications from this address; retry after "
        "`Retry-After` seconds."
    ),
}


def runtime_message(exc: BaseException) -> str:
    # str(KeyError("x")) is "'x'": use the runtime's message as written.
    return str(exc.args[0]) if exc.args else exc.__class__.__name__
