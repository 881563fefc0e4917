"""Teams: `GET/POST /api/teams/`, `GET /api/teams/{id}/`, and the owner's
`POST /api/teams/{id}/members/` `{"userId"}` or `{"username"}` and `DELETE /api/teams/{id}/members/{userId}/`.

A user sees the teams they belong to; only a team's owner changes its members.
"""
from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from apps.todos.api.serializers import UUID_ROUTE, StrictSerializer, active_user
from apps.todos.models import Team


class MemberSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    username = serializers.CharField()

    def get_id(self, user) -> str:
        return str(user.pk)


class TeamSerializer(serializers.ModelSerializer):
    ownerId = serializers.SerializerMethodField()
    members = MemberSerializer(many=True, read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "ownerId", "members", "createdAt"]

    def get_ownerId(self, team) -> str:
        return str(team.owner_id)


class TeamCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)


class MemberAddSerializer(StrictSerializer):
    """The user to add, by `userId` or by `username`."""

    userId = serializers.CharField(max_length=64, required=False)
    username = serializers.CharField(max_length=150, required=False)

    def validate_userId(self, value):
        return active_user(value)

    def validate(self, attrs):
        if "userId" in attrs:
            return {"user": attrs["userId"]}
        if "username" not in attrs:
            raise serializers.ValidationError({"userId": ["Give a userId or a username."]})
        user = get_user_model().objects.filter(username=attrs["username"], is_active=True).first()
        if user is None:
            raise serializers.ValidationError({"username": ["No such user."]})
        return {"user": user}


class TeamViewSet(viewsets.ViewSet):
    lookup_value_regex = UUID_ROUTE

    def _team(self, request: Request, pk: str, *, owner: bool = False) -> Team:
        team = Team.objects.filter(id=pk, members=request.user).prefetch_related("members").first()
        if team is None:
            raise NotFound(f"team {pk} not found")
        if owner and team.owner_id != request.user.pk:
            raise PermissionDenied("only the team's owner may change its members")
        return team

    @extend_schema(responses=TeamSerializer(many=True))
    def list(self, request: Request) -> Response:
        """The teams you are a member of."""
        teams = Team.objects.filter(members=request.user).prefetch_related("members")
        return Response(TeamSerializer(teams, many=True).data)

    @extend_schema(responses=TeamSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(TeamSerializer(self._team(request, pk)).data)

    @extend_schema(request=TeamCreateSerializer, responses={201: TeamSerializer})
    def create(self, request: Request) -> Response:
        """A new team, owned by you, with you as its first member."""
        data = TeamCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            team = Team.objects.create(name=data.validated_data["name"], owner=request.user)
            team.members.add(request.user)
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberAddSerializer, responses={200: TeamSerializer})
    @action(detail=True, methods=["post"])
    def members(self, request: Request, pk: str) -> Response:
        team = self._team(request, pk, owner=True)
        data = MemberAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if team.members.count() >= Team.MAX_MEMBERS:
            return Response({"userId": [f"The team is full ({Team.MAX_MEMBERS} members)."]},
                            status=status.HTTP_400_BAD_REQUEST)
        team.members.add(data.validated_data["user"])
        return Response(TeamSerializer(self._team(request, pk)).data)

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>[0-9]{1,18})")
    def remove_member(self, request: Request, pk: str, user_id: str) -> Response:
        team = self._team(request, pk, owner=True)
        if int(user_id) == team.owner_id:
            return Response({"userId": ["The owner cannot leave their team."]}, status=status.HTTP_400_BAD_REQUEST)
        if not team.members.filter(pk=user_id).exists():
            raise NotFound(f"user {user_id} is not a member")
        team.members.remove(int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
