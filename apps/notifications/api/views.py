"""`GET /api/notifications/` (your own, newest first; filters `channel`, `unread`),
`POST /api/notifications/{id}/read/`, and `GET`/`PUT /api/notifications/preferences/`."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.notifications import selectors, services
from apps.notifications.api.serializers import NotificationFilter, PreferencesSerializer, notification_json


class Pagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 200


class NotificationViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[0-9]{1,18}"

    @extend_schema(parameters=[OpenApiParameter("channel", str), OpenApiParameter("unread", bool),
                               OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses={200: OpenApiTypes.OBJECT})
    def list(self, request: Request) -> Response:
        """Your notifications with their delivery status; `unreadCount` counts unread in-app ones."""
        filters = NotificationFilter(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        notifications = selectors.notification_list(user_id=request.user.pk,
                                                    channel=filters.validated_data.get("channel"),
                                                    unread=filters.validated_data.get("unread"))
        paginator = Pagination()
        page = paginator.paginate_queryset(notifications, request, view=self)
        answer = paginator.get_paginated_response([notification_json(n) for n in page])
        answer.data["unreadCount"] = selectors.unread_count(user_id=request.user.pk)
        return answer

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str) -> Response:
        """Mark one of your notifications read (idempotent)."""
        notification = services.notification_mark_read(user_id=request.user.pk, notification_id=int(pk))
        if notification is None:
            raise NotFound(f"notification {pk} not found")
        return Response({**notification_json(notification), "unreadCount": selectors.unread_count(user_id=request.user.pk)})

    @extend_schema(request=PreferencesSerializer, responses={200: PreferencesSerializer})
    @action(detail=False, methods=["get", "put"])
    def preferences(self, request: Request) -> Response:
        """Which categories reach you on which channel. PUT the entries to change."""
        if request.method == "PUT":
            data = PreferencesSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            services.preferences_set(user_id=request.user.pk, choices=data.validated_data["preferences"])
        return Response({"preferences": selectors.preferences_of(user_id=request.user.pk)})
