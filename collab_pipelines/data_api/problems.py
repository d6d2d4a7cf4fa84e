"""Errors as RFC 9457 problem documents: every 4xx says what was wrong with the request."""

from pydantic import BaseModel, Field

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
        404: "The dataset, partition, commit or report does not exist.",
        406: "None of the media types in Accept can be produced.",
    }
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {"description": descriptions[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
        for status in statuses
    }
