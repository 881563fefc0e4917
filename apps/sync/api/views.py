"""Devices: `GET/POST /api/devices/`, `GET/PATCH/DELETE /api/devices/{id}/`; conflicts:
`GET /api/conflicts/` (`?all=true`: resolved ones too), `GET /api/conflicts/{id}/`,
`POST /api/conflicts/{id}/resolve/` `{value}`; the conflict policy: `GET/PUT /api/sync/settings/`.

A user registers each of their clients (`{name, platform}`: web, desktop, mobile or cli) and
gets its `deviceId`, which the client names when it connects to `/ws/sync/` (apps.sync.sockets).
Each device shows whether it is online (a socket open now), when it was last seen, and how far
it has synced: the offset it acknowledged and its user's stream's end (`streamOffset`). PATCH
changes its name or its `filters` (`{"own": true}`: only the user's own todos and those assigned
to them; `{"teams": [ids]}`: besides those, only these teams'; `{}`: everything). DELETE removes
it and closes its sockets. A user sees and changes only their own devices.

A conflict (apps.sync.conflicts: two devices changed one field concurrently, under the manual
policy) is seen by everyone who may see its todo, and resolved by the todo's owner with the
value they choose: one of the two, or a third. The policy is the user's, for their own todos.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.sync import mutations, selectors, services
from apps.sync.api.serializers import PolicySerializer, ResolveSerializer, value_of_field
from apps.sync.models import Conflict, Device
from apps.todos.api.errors import error_response
from apps.todos.api.serializers import UUID_ROUTE
from apps.todos.services import TodoError
from polystack.api import StrictSerializer, correlation_id

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


def conflict_json(conflict: Conflict) -> dict:
    return {
        "conflictId": str(conflict.id), "todoId": str(conflict.todo_id), "field": conflict.field,
        "baseVersion": conflict.base_version, "baseValue": conflict.base_value, "localValue": conflict.local_value,
        "remoteValue": conflict.remote_value,
        "localDeviceId": str(conflict.local_device_id) if conflict.local_device_id else None,
        "remoteDeviceId": str(conflict.remote_device_id) if conflict.remote_device_id else None,
        "detectedBy": str(conflict.detected_by_id), "createdAt": conflict.created_at,
        "resolvedAt": conflict.resolved_at,
        "resolvedBy": str(conflict.resolved_by_id) if conflict.resolved_by_id else None,
        "resolution": conflict.resolution,
    }


class ConflictListSerializer(StrictSerializer):
    all = serializers.BooleanField(required=False, default=False)


class ConflictViewSet(viewsets.ViewSet):
    lookup_value_regex = UUID_ROUTE

    def _visible(self, request: Request, pk: str) -> Conflict:
        conflict = selectors.conflict_get(user_id=request.user.pk, conflict_id=pk)
        if conflict is None:
            raise NotFound(f"conflict {pk} not found")
        return conflict

    @extend_schema(operation_id="conflicts_list", parameters=[ConflictListSerializer],
                   responses={200: OpenApiTypes.OBJECT})
    def list(self, request: Request) -> Response:
        """The conflicts of the todos you may see: open ones, oldest first (`?all=true`: the
        last thousand, resolved ones too)."""
        query = ConflictListSerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        found = selectors.conflicts_of(user_id=request.user.pk, open_only=not query.validated_data["all"])
        return Response([conflict_json(c) for c in found])

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(conflict_json(self._visible(request, pk)))

    @extend_schema(request=ResolveSerializer, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        """Choose the field's value (the todo's owner): TodoConflictResolved, and the field set to it."""
        conflict = self._visible(request, pk)
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            value = value_of_field(conflict.field, body.validated_data["value"])
        except serializers.ValidationError as exc:
            raise ValidationError({"value": exc.detail}) from None
        cid = correlation_id(request)
        try:
            conflict = mutations.conflict_resolve(user=request.user, conflict=conflict, value=value,
                                                  correlation_id=cid)
        except TodoError as exc:
            return error_response(exc, cid)
        return Response(conflict_json(conflict), headers={"X-Correlation-ID": cid})


class SyncSettingsView(APIView):
    """How concurrent edits of the same field of your todos end: `lww` (last write wins),
    `merge` (the field's rule, else last write wins) or `manual` (you choose)."""

    @extend_schema(responses={200: PolicySerializer})
    def get(self, request: Request) -> Response:
        return Response({"conflictPolicy": mutations.conflict_policy(user_id=request.user.pk)})

    @extend_schema(request=PolicySerializer, responses={200: PolicySerializer})
    def put(self, request: Request) -> Response:
        body = PolicySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        policy = mutations.policy_set(user=request.user, policy=body.validated_data["conflictPolicy"])
        return Response({"conflictPolicy": policy})
