"""Devices: `GET/POST /api/devices/`, `GET/PATCH/DELETE /api/devices/{id}/`.

A user registers each of their clients (`{name, platform}`: web, desktop, mobile or cli) and
gets its `deviceId`, which the client names when it connects to `/ws/sync/` (apps.sync.sockets).
Each device shows whether it is online (a socket open now), when it was last seen, and how far
it has synced: the offset it acknowledged and its user's stream's end (`streamOffset`). PATCH
changes its name or its `filters` (`{"own": true}`: only the user's own todos and those assigned
to them; `{"teams": [ids]}`: besides those, only these teams'; `{}`: everything). DELETE removes
it and closes its sockets. A user sees and changes only their own devices.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.sync import selectors, services
from apps.sync.models import Device
from apps.todos.api.serializers import UUID_ROUTE
from polystack.api import StrictSerializer

MAX_FILTER_TEAMS = 100


class DeviceCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    platform = serializers.ChoiceField(choices=[value for value, _ in Device.PLATFORMS])


class FiltersSerializer(StrictSerializer):
    own = serializers.BooleanField(required=False)
    teams = serializers.ListField(child=serializers.UUIDField(format="hex_verbose"), max_length=MAX_FILTER_TEAMS,
                                  required=False)

    def validate(self, attrs):
        if attrs.get("own") and "teams" in attrs:
            raise ValidationError("own and teams: one or the other")
        if "teams" in attrs:
            return {"teams": sorted({str(team) for team in attrs["teams"]})}
        return {"own": True} if attrs.get("own") else {}


class DeviceChangeSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    filters = FiltersSerializer(required=False)


def device_json(device: Device, stream_offset: int) -> dict:
    return {
        "deviceId": str(device.id), "name": device.name, "platform": device.platform,
        "createdAt": device.created_at, "online": selectors.is_online(device), "lastSeenAt": device.last_seen_at,
        "syncedOffset": device.acked_offset, "streamOffset": stream_offset,
        "lastMutationId": device.last_mutation_id, "filters": device.filters,
    }


class DeviceViewSet(viewsets.ViewSet):
    lookup_value_regex = UUID_ROUTE

    def _stream_offset(self, request: Request) -> int:
        head = selectors.stream_head(user_id=request.user.pk)
        return head.offset if head else -1

    def _own(self, request: Request, pk: str) -> Device:
        device = selectors.device_get(user_id=request.user.pk, device_id=pk)
        if device is None:
            raise NotFound(f"device {pk} not found")
        return device

    @extend_schema(operation_id="devices_list", responses={200: OpenApiTypes.OBJECT})
    def list(self, request: Request) -> Response:
        """Your devices, oldest first."""
        offset = self._stream_offset(request)
        return Response([device_json(d, offset) for d in selectors.device_list(user_id=request.user.pk)])

    @extend_schema(request=DeviceCreateSerializer, responses={201: OpenApiTypes.OBJECT})
    def create(self, request: Request) -> Response:
        """Register a device of yours; name its `deviceId` when it connects to /ws/sync/."""
        data = DeviceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            device = services.device_register(user=request.user, **data.validated_data)
        except services.DeviceLimitError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(device_json(device, self._stream_offset(request)), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(device_json(self._own(request, pk), self._stream_offset(request)))

    @extend_schema(request=DeviceChangeSerializer, responses={200: OpenApiTypes.OBJECT})
    def partial_update(self, request: Request, pk: str) -> Response:
        """Rename a device, or change what it receives (`filters`)."""
        device = self._own(request, pk)
        data = DeviceChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device = services.device_change(device=device, **data.validated_data)
        return Response(device_json(device, self._stream_offset(request)))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Remove a device of yours; its open sockets close (4404)."""
        if not services.device_remove(user=request.user, device_id=pk):
            raise NotFound(f"device {pk} not found")
        return Response(status=status.HTTP_204_NO_CONTENT)
