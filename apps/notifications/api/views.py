"""`GET /api/notifications/` (your own, newest first; filters `channel`, `unread`),
`POST /api/notifications/{id}/read/`, and `GET`/`PUT /api/notifications/preferences/`."""
from django.db import transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.notifications.models import CATEGORIES, CHANNELS, IN_APP, Notification, NotificationPreference
from apps.notifications.services import switched_off
from apps.notifications.tasks import as_json
from apps.todos.api.serializers import StrictSerializer


class NotificationFilter(StrictSerializer):
    channel = serializers.ChoiceField(choices=[c for c, _ in CHANNELS], required=False)
    unread = serializers.BooleanField(required=False, allow_null=True, default=None)
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=200, required=False)


class Pagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 200


class PreferenceSerializer(StrictSerializer):
    category = serializers.ChoiceField(choices=[c for c, _ in CATEGORIES])
    channel = serializers.ChoiceField(choices=[c for c, _ in CHANNELS])
    enabled = serializers.BooleanField()


class PreferencesSerializer(StrictSerializer):
    preferences = PreferenceSerializer(many=True, allow_empty=False)


def preferences_of(user_id: int) -> list[dict]:
    """Every category x channel with its setting (on unless switched off)."""
    off = switched_off(user_id)
    return [
        {"category": category, "label": label, "channel": channel, "enabled": (category, channel) not in off}
        for category, label in CATEGORIES for channel, _ in CHANNELS
    ]


def unread_count(user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, channel=IN_APP, read_at__isnull=True).count()


class NotificationViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[0-9]{1,18}"

    @extend_schema(parameters=[OpenApiParameter("channel", str), OpenApiParameter("unread", bool),
                               OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
                   responses={200: OpenApiTypes.OBJECT})
    def list(self, request: Request) -> Response:
        """Your notifications with their delivery status; `unreadCount` counts unread in-app ones."""
        filters = NotificationFilter(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        notifications = Notification.objects.filter(recipient=request.user)
        if filters.validated_data.get("channel"):
            notifications = notifications.filter(channel=filters.validated_data["channel"])
        if filters.validated_data.get("unread") is not None:
            notifications = notifications.filter(read_at__isnull=filters.validated_data["unread"])
        paginator = Pagination()
        page = paginator.paginate_queryset(notifications, request, view=self)
        answer = paginator.get_paginated_response([as_json(n) for n in page])
        answer.data["unreadCount"] = unread_count(request.user.pk)
        return answer

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str) -> Response:
        """Mark one of your notifications read (idempotent)."""
        if not pk.isdigit():
            raise NotFound(f"notification {pk} not found")
        notification = Notification.objects.filter(id=int(pk), recipient=request.user).first()
        if notification is None:
            raise NotFound(f"notification {pk} not found")
        if notification.read_at is None:
            notification.read_at = timezone.now()
            notification.save(update_fields=["read_at"])
        return Response({**as_json(notification), "unreadCount": unread_count(request.user.pk)})

    @extend_schema(request=PreferencesSerializer, responses={200: PreferencesSerializer})
    @action(detail=False, methods=["get", "put"])
    def preferences(self, request: Request) -> Response:
        """Which categories reach you on which channel. PUT the entries to change."""
        if request.method == "PUT":
            data = PreferencesSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            with transaction.atomic():
                for choice in data.validated_data["preferences"]:
                    NotificationPreference.objects.update_or_create(
                        user=request.user, category=choice["category"], channel=choice["channel"],
                        defaults={"enabled": choice["enabled"]})
        return Response({"preferences": preferences_of(request.user.pk)}, status=status.HTTP_200_OK)
