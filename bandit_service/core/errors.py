"""Domain errors: what went wrong, in the domain's words, and which field of the request caused it.

Each class maps to one HTTP problem type in `bandit_service.http.problems`; nothing else in the
service decides status codes.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "DomainError",
    "IllegalTransitionError",
    "InvalidFieldError",
    "MalformedBodyError",
    "NotFoundError",
    "RewardWindowClosedError",
    "UnavailableError",
    "UnsupportedMediaTypeError",
]


class DomainError(Exception):
    """Base of every error a client can cause or should retry; `field` names the offending input."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFoundError(DomainError):
    """The experiment or decision named in the request does not exist."""


class InvalidFieldError(DomainError):
    """A well-formed request whose content is not acceptable (wrong type, out of range, inconsistent)."""


class RewardWindowClosedError(InvalidFieldError):
    """A reward arrived after its decision's reward window closed (it counted with the default)."""


class MalformedBodyError(DomainError):
    """The body is not JSON at all, or is missing where one is required."""


class UnsupportedMediaTypeError(DomainError):
    """The body is not declared as JSON."""


class ConflictError(DomainError):
    """The request contradicts the current state (a reused idempotency key, a second reward)."""


class AlreadyExistsError(ConflictError):
    """An experiment with this key already exists."""


class IllegalTransitionError(ConflictError):
    """A lifecycle action that the experiment's current status does not allow."""

    def __init__(self, detail: str, *, current_status: str, field: str = "status") -> None:
        super().__init__(detail, field=field)
        self.current_status = current_status


class UnavailableError(DomainError):
    """The service cannot take writes right now (shutting down, database busy); retry later."""


class UnauthenticatedError(DomainError):
    """The request carries no API key, or one the service does not know (revoked, mistyped)."""


class ForbiddenError(DomainError):
    """The request's key is valid but its role is too small for the endpoint."""
