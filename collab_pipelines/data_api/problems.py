"""Errors as RFC 9457 problem documents, in one place: every refusal says what was wrong.

Routes raise `ApiProblem`; `install_problem_handlers` turns it, FastAPI's validation errors,
Starlette's 404/405, a warehouse that does not answer and any bug into a problem document.
`RequestLimits` refuses oversized requests with a problem too, before a route runs.
"""

import json
import logging

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field("about:blank", description="A URI naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What exactly was wrong, naming the parameter or value at fault.")
    parameter: str | None = Field(None, description="The request parameter at fault, if one.")


class ApiProblem(Exception):
    """Raised anywhere in a request; the app turns it into a problem response."""

    def __init__(self, status: int, title: str, detail: str, parameter: str | None = None):
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, parameter=parameter)


def bad_request(detail: str, parameter: str | None = None) -> ApiProblem:
    return ApiProblem(400, "Bad request", detail, parameter)


def not_found(detail: str, parameter: str | None = None) -> ApiProblem:
    return ApiProblem(404, "Not found", detail, parameter)


def problem_responses(*statuses: int) -> dict:
    """The OpenAPI `responses` entries for the problems an endpoint can return."""
    descriptions = {
        400: "A parameter is malformed or names something the dataset does not have.",
        401: "No bearer token, or one that is not configured.",
        403: "The request is understood but refused.",
        404: "The dataset, partition, commit, suite or report does not exist.",
        414: "The query string is longer than the server accepts.",
        431: "The request's headers are larger than the server accepts.",
    }
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {"description": descriptions[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for status in statuses
    }


def problem_response(problem: Problem) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiProblem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(sa.exc.OperationalError, _warehouse_down)
    app.add_exception_handler(Exception, _unexpected)


def _problem(_request: Request, error: ApiProblem) -> JSONResponse:
    return problem_response(error.problem)


def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {}
    location = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path", "header"))
    return problem_response(
        bad_request(f"{location}: {first.get('msg', 'invalid')}", location or None).problem
    )


def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
    titles = {404: "Not found", 405: "Method not allowed"}
    detail = "no such endpoint; see /docs" if error.status_code == 404 else str(error.detail)
    response = problem_response(
        Problem(title=titles.get(error.status_code, "Error"), status=error.status_code, detail=detail)
    )
    response.headers.update(error.headers or {})  # a 405 names the allowed methods in Allow
    return response


def _warehouse_down(_request: Request, error: sa.exc.OperationalError) -> JSONResponse:
    # The message may name hosts or users; it goes to the log, never to the client.
    log.error("warehouse query failed: %s", error)
    return problem_response(
        Problem(title="Warehouse unavailable", status=503, detail="the warehouse did not answer; retry later")
    )


def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    # A bug, never a detail for the client: the traceback goes to the log only.
    log.error("unexpected error", exc_info=error)
    return problem_response(
        Problem(title="Internal error", status=500, detail="the server failed; the error is logged")
    )


class RequestLimits:
    """ASGI middleware: an oversized request gets a problem document, not a bare error.

    The HTTP server's own limits sit far above these (see `server.py`), so a request of any
    size the server reads at all reaches this check and is refused in the API's own words.
    """

    def __init__(self, app, *, max_query_bytes: int, max_header_bytes: int):
        self.app = app
        self.max_query_bytes = max_query_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            problem = self._refusal(scope)
            if problem is not None:
                body = json.dumps(problem.model_dump(exclude_none=True)).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": problem.status,
                        "headers": [
                            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope) -> Problem | None:
        query = len(scope.get("query_string", b""))
        if query > self.max_query_bytes:
            return Problem(
                title="URI too long",
                status=414,
                detail=f"the query string has {query} bytes; the limit is {self.max_query_bytes}",
            )
        headers = sum(len(name) + len(value) for name, value in scope.get("headers", ()))
        if headers > self.max_header_bytes:
            return Problem(
                title="Request header fields too large",
                status=431,
                detail=f"the headers have {headers} bytes; the limit is {self.max_header_bytes}",
            )
        return None
