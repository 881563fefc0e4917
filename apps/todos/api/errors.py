"""How a todo command's error answers over HTTP, in one table for every API that runs commands
(the todo resource, conflict resolution)."""
from rest_framework import status
from rest_framework.response import Response

from apps.todos import services

# Most specific first (a subclass answers as its nearest base here; a VersionConflictError also
# names the current version).
ERROR_STATUS: tuple[tuple[type[services.TodoError], int], ...] = (
    (services.TodoNotFoundError, status.HTTP_404_NOT_FOUND),
    (services.TodoForbiddenError, status.HTTP_403_FORBIDDEN),
    (services.TodoInvalidError, status.HTTP_400_BAD_REQUEST),
    (services.TodoConflictError, status.HTTP_409_CONFLICT),
    (services.TodoError, status.HTTP_400_BAD_REQUEST),
)


def error_status(exc: services.TodoError) -> int:
    return next(code for kind, code in ERROR_STATUS if isinstance(exc, kind))


def error_response(exc: services.TodoError, cid: str) -> Response:
    body = {"detail": str(exc)}
    if isinstance(exc, services.TodoInvalidError):
        body = {exc.field: [str(exc)]}  # shaped like a field error of the serializer
    if isinstance(exc, services.VersionConflictError):
        body["currentVersion"] = exc.current
    return Response(body, status=error_status(exc), headers={"X-Correlation-ID": cid})
