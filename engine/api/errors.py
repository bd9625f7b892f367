"""Errors as the API answers them: always `{"error": "..."}` JSON, never a stack trace.

`ApiError` is what routes raise; the app's exception handlers (engine/api/app.py) and the
idempotent `mutate` helper (engine/api/mutations.py) turn it into a response.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message}, self.status, headers=self.headers)


class ErrorBody(BaseModel):
    error: str


class Reason(BaseModel):
    where: str = Field(description='Where the problem is, e.g. "body.matchers.0.name".')
    message: str


class InvalidRequestBody(ErrorBody):
    """A 422: `error` names the first problem; `reasons` (for a body or parameters that do
    not validate) lists them all."""

    reasons: list[Reason] | None = None


def error_doc(description: str, model: type[BaseModel] = ErrorBody) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an error answered with `ErrorBody`."""
    return {"model": model, "description": description}


Responses = dict[int | str, dict[str, Any]]

RATE_LIMITED = error_doc(
    "Rate limited, or too many failed authentications from this address; retry after "
    "`Retry-After` seconds."
)
INVALID = error_doc("Invalid parameters.", InvalidRequestBody)

# Every read that needs a role can be refused for these reasons (and for invalid parameters,
# READ_ERRORS).
AUTH_ERRORS: Responses = {
    401: error_doc("No or an unknown bearer token (`WWW-Authenticate: Bearer`)."),
    403: error_doc("The identity lacks the `read` role."),
    429: RATE_LIMITED,
}
READ_ERRORS: Responses = {**AUTH_ERRORS, 422: INVALID}

# Every mutation can be refused for these reasons before it reaches the runtime.
MUTATION_ERRORS: Responses = {
    400: error_doc("A body that cannot be decoded (not UTF-8), or a bad Content-Length."),
    401: error_doc("No or an unknown bearer token (`WWW-Authenticate: Bearer`)."),
    403: error_doc("The identity lacks the role (e.g. a read-only token)."),
    409: error_doc("A request with this Idempotency-Key is still being answered; retry later."),
    413: error_doc("Request body too large."),
    422: error_doc(
        "Invalid body, parameters, or an Idempotency-Key reused for another request.",
        InvalidRequestBody,
    ),
    429: RATE_LIMITED,
    503: error_doc("The store cannot be read or written right now; retry."),
}


def json_errors(responses: Responses) -> Responses:
    """The same error entries for a route whose success is not JSON (/metrics, /status):
    FastAPI files an entry's `model` under the route's own media type (text/plain,
    text/html), but errors are always JSON — so name the schema under application/json."""
    out: Responses = {}
    for status, entry in responses.items():
        entry = dict(entry)
        model = entry.pop("model", None)
        if model is not None:
            schema = {"$ref": f"#/components/schemas/{model.__name__}"}
            entry["content"] = {"application/json": {"schema": schema}}
        out[status] = entry
    return out


def runtime_message(exc: BaseException) -> str:
    # str(KeyError("x")) is "'x'": use the runtime's message as written.
    return str(exc.args[0]) if exc.args else exc.__class__.__name__
