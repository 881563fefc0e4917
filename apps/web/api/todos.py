"""The todo resource of the REST API: commands go to apps.todos.services, reads to
apps.projections.selectors. It composes the write side and the read side, so it lives above both.

A command answers 201/200 with the projected todo once its events are applied (read your
writes, bounded by READ_YOUR_WRITES_TIMEOUT_S), or 202 with the todo's id and URL when the
bound passes: the command itself is committed either way.
"""
import uuid
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.projections import selectors
from apps.projections.api.serializers import TodoAtSerializer, TodoSerializer, changes
from apps.todos import services
from apps.todos.api import serializers as s
from apps.todos.api.errors import error_response
from polystack.api import correlation_id

class TodoPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class TodoViewSet(viewsets.ViewSet):
    lookup_value_regex = s.UUID_ROUTE

    def _todo_url(self, request: Request, todo_id) -> str:
        return request.build_absolute_uri(reverse("todo-detail", kwargs={"pk": str(todo_id)}))

    def _run(self, request: Request, command, *, created: bool = False, gone: bool = False, **arguments) -> Response:
        """Run a service command and answer with the projected result (read your writes)."""
        cid = correlation_id(request)
        projected_before = selectors.projection_generation()
        try:
            result = command(actor=request.user, correlation_id=cid, **arguments)
        except services.TodoError as exc:
            return error_response(exc, cid)
        headers = {"X-Correlation-ID": cid, "Location": self._todo_url(request, result.todo_id)}
        todo = selectors.todo_wait_for_version(
            todo_id=result.todo_id, version=result.version, timeout_s=settings.READ_YOUR_WRITES_TIMEOUT_S,
            since=projected_before,
        )
        if todo is None:
            body = {"id": result.todo_id, "url": headers["Location"], "version": result.version}
            return Response(s.AcceptedSerializer(body).data, status=status.HTTP_202_ACCEPTED, headers=headers)
        if gone:
            return Response(status=status.HTTP_204_NO_CONTENT, headers=headers)
        return Response(TodoSerializer(todo).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
                        headers=headers)

    @staticmethod
    def _valid(serializer_class, request: Request) -> dict:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(
        parameters=[
            OpenApiParameter("completed", bool), OpenApiParameter("deleted", bool),
            OpenApiParameter("priority", str, enum=["low", "medium", "high", "urgent"]),
            OpenApiParameter("assignedTo", str), OpenApiParameter("teamId", str), OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=TodoSerializer(many=True),
    )
    def list(self, request: Request) -> Response:
        """Your todos, those assigned to you and your teams' todos, newest first; `deleted=true`:
        the deleted ones (their `deletedAt` set), whose history you may still read."""
        filters = s.TodoFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        todos = selectors.todo_list(
            user=request.user,
            completed=filters.validated_data.get("completed"),
            priority=filters.validated_data.get("priority"),
            assigned_to=filters.validated_data.get("assignedTo"),
            team_id=filters.validated_data.get("teamId"),
            deleted=filters.validated_data["deleted"],
        )
        paginator = TodoPagination()
        page = paginator.paginate_queryset(todos, request, view=self)
        shape = TodoAtSerializer if filters.validated_data["deleted"] else TodoSerializer
        return paginator.get_paginated_response(shape(page, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("version", int), OpenApiParameter("asOf", OpenApiTypes.DATETIME)],
                   responses=TodoAtSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """The todo now; with `version=N` or `asOf=<instant>`, the todo as it was then (time
        travel: folded from its events by the projection's own fold, with `deletedAt`). A
        deleted todo can be read that way by those who could see it; 404 for a version it never
        had or an instant before it existed."""
        at = s.TodoAtQuerySerializer(data={k: v for k, v in request.query_params.items() if k in ("version", "asOf")})
        at.is_valid(raise_exception=True)
        if not at.validated_data:
            todo = selectors.todo_get(user=request.user, todo_id=uuid.UUID(pk))
            if todo is None:
                raise NotFound(f"todo {pk} not found")
            return Response(TodoSerializer(todo).data)
        version = at.validated_data.get("version")
        history = selectors.todo_history(user=request.user, todo_id=uuid.UUID(pk), version=version,
                                         as_of=at.validated_data.get("asOf"))
        if history is None:
            raise NotFound(f"todo {pk} not found")
        if not history or (version is not None and history[-1][1].version != version):
            raise NotFound(f"todo {pk} had no version {version}" if version else f"todo {pk} did not exist then")
        return Response(TodoAtSerializer(history[-1][1]).data)

    @extend_schema(request=s.TodoCreateSerializer, responses={201: TodoSerializer, 202: s.AcceptedSerializer})
    def create(self, request: Request) -> Response:
        data = self._valid(s.TodoCreateSerializer, request)
        return self._run(request, services.todo_create, created=True, title=data["title"],
                         description=data["description"], priority=data["priority"], due_date=data["dueDate"],
                         reminder_times=data["reminderTimes"], team_id=data["teamId"])

    @extend_schema(request=s.TodoUpdateSerializer, responses={200: TodoSerializer, 202: s.AcceptedSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        data = self._valid(s.TodoUpdateSerializer, request)
        return self._run(request, services.todo_update, todo_id=uuid.UUID(pk), title=data.get("title"),
                         description=data.get("description"), expected_version=data.get("expectedVersion"))

    @extend_schema(request=s.CommandSerializer, responses={204: None, 202: s.AcceptedSerializer})
    def destroy(self, request: Request, pk: str) -> Response:
        data = self._valid(s.CommandSerializer, request)
        return self._run(request, services.todo_delete, gone=True, todo_id=uuid.UUID(pk),
                         expected_version=data.get("expectedVersion"))

    @extend_schema(request=s.CommandSerializer, responses={200: TodoSerializer, 202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str) -> Response:
        data = self._valid(s.CommandSerializer, request)
        return self._run(request, services.todo_complete, todo_id=uuid.UUID(pk),
                         expected_version=data.get("expectedVersion"))

    @extend_schema(request=s.TodoAssignSerializer, responses={200: TodoSerializer, 202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str) -> Response:
        data = self._valid(s.TodoAssignSerializer, request)
        return self._run(request, services.todo_assign, todo_id=uuid.UUID(pk), assignee=data["assignedTo"],
                         expected_version=data.get("expectedVersion"))

    @extend_schema(request=s.TodoPrioritizeSerializer, responses={200: TodoSerializer, 202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def prioritize(self, request: Request, pk: str) -> Response:
        data = self._valid(s.TodoPrioritizeSerializer, request)
        return self._run(request, services.todo_prioritize, todo_id=uuid.UUID(pk), priority=data["priority"],
                         expected_version=data.get("expectedVersion"))

    @extend_schema(request=s.TodoScheduleSerializer, responses={200: TodoSerializer, 202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def schedule(self, request: Request, pk: str) -> Response:
        """Set the due date and the reminders (a day and an hour before it unless `reminderTimes`
        names them); `dueDate: null` clears both."""
        data = self._valid(s.TodoScheduleSerializer, request)
        return self._run(request, services.todo_schedule, todo_id=uuid.UUID(pk), due_date=data["dueDate"],
                         reminder_times=data["reminderTimes"], expected_version=data.get("expectedVersion"))

    @extend_schema(request=s.TodoSnoozeSerializer, responses={202: s.SnoozedSerializer})
    @action(detail=True, methods=["post"], url_path="reminders/snooze")
    def snooze(self, request: Request, pk: str) -> Response:
        """Remind me again `until` a moment or in `minutes` (up to 7 days): the owner only, of a
        todo with a due date that is not completed. 202: the scheduler arms it shortly."""
        data = self._valid(s.TodoSnoozeSerializer, request)
        until = data.get("until") or timezone.now() + timedelta(minutes=data["minutes"])
        cid = correlation_id(request)
        try:
            result = services.todo_snooze(actor=request.user, todo_id=uuid.UUID(pk), until=until, correlation_id=cid)
        except services.TodoError as exc:
            return error_response(exc, cid)
        body = s.SnoozedSerializer({"todoId": result.todo_id, "snoozeUntil": result.snooze_until}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"X-Correlation-ID": cid})

    @extend_schema(parameters=[OpenApiParameter("afterVersion", int), OpenApiParameter("limit", int)],
                   responses={200: dict})
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str) -> Response:
        """The todo's history: `[{"event": <envelope>, "changes": [{"field", "before", "after"}]}]`
        after `afterVersion`, in aggregateVersion order, at most `limit` (500; up to 1000) a page;
        `Link: <…>; rel="next"` names the next page. Deleted todos too, for those who could see them."""
        page = s.EventPageSerializer(data=request.query_params.dict())
        page.is_valid(raise_exception=True)
        after, limit = page.validated_data["afterVersion"], page.validated_data["limit"]
        history = selectors.todo_history(user=request.user, todo_id=uuid.UUID(pk), version=after + limit + 1)
        if history is None:
            raise NotFound(f"todo {pk} not found")
        shown = [TodoAtSerializer(todo).data for _, todo in history]
        items = [{"event": envelope, "changes": changes(shown[n - 1] if n else None, shown[n])}
                 for n, (envelope, _) in enumerate(history) if envelope["aggregateVersion"] > after]
        headers = {}
        if len(items) > limit:
            items = items[:limit]
            following = request.build_absolute_uri(
                f"{request.path}?afterVersion={items[-1]['event']['aggregateVersion']}&limit={limit}")
            headers["Link"] = f'<{following}>; rel="next"'
        return Response(items, headers=headers)
