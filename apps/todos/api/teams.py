"""Teams: `GET/POST /api/teams/`, `GET /api/teams/{id}/`; the owner invites with
`POST /api/teams/{id}/members/` `{"userId"}` or `{"username"}` and removes with
`DELETE /api/teams/{id}/members/{userId}/`; a member leaves with `POST /api/teams/{id}/leave/`;
the invitee answers at `/api/invitations/`.

A user sees the teams they belong to. Nobody joins a team without accepting an invitation:
membership shows one's name to the team and the team's todos to one.
"""
from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from apps.todos import services
from apps.todos.api.serializers import UUID_ROUTE
from apps.todos.events import USER_ID
from apps.todos.models import Team, TeamInvitation
from polystack.api import StrictSerializer, correlation_id


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
    """The user to invite, by `userId` or by `username`."""

    userId = serializers.RegexField(USER_ID, max_length=18, required=False)
    username = serializers.CharField(max_length=150, required=False)

    def validate(self, attrs):
        if "userId" in attrs:
            return {"user_id": int(attrs["userId"])}
        if "username" not in attrs:
            raise serializers.ValidationError({"userId": ["Give a userId or a username."]})
        user = get_user_model().objects.filter(username=attrs["username"]).first()
        return {"user_id": user.pk if user else None}


class InvitationSerializer(serializers.ModelSerializer):
    teamId = serializers.UUIDField(source="team_id")
    teamName = serializers.CharField(source="team.name")
    invitedBy = serializers.CharField(source="invited_by.username")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = TeamInvitation
        fields = ["id", "teamId", "teamName", "invitedBy", "createdAt"]


INVITED = {"detail": "If that user exists and is not a member yet, they are invited; they join when they accept."}


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

    @extend_schema(request=MemberAddSerializer, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def members(self, request: Request, pk: str) -> Response:
        """Invite a user (the owner only). The answer is the same whoever it names."""
        team = self._team(request, pk, owner=True)
        data = MemberAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.team_invite(team=team, invitee_id=data.validated_data["user_id"], actor=request.user)
        return Response(INVITED, status=status.HTTP_202_ACCEPTED)

    def _remove(self, request: Request, team: Team, user_id: int) -> Response:
        try:
            services.team_remove_member(team=team, user_id=user_id, actor=request.user,
                                        correlation_id=correlation_id(request))
        except services.TeamOwnerLeavesError as exc:
            return Response({"userId": [f"{exc}."]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>[0-9]{1,18})")
    def remove_member(self, request: Request, pk: str, user_id: str) -> Response:
        """Remove a member (the owner only); their team todos are unassigned."""
        team = self._team(request, pk, owner=True)
        if not team.members.filter(pk=user_id).exists():
            raise NotFound(f"user {user_id} is not a member")
        return self._remove(request, team, int(user_id))

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def leave(self, request: Request, pk: str) -> Response:
        """Leave a team you are a member of (not one you own); its todos assigned to you are unassigned."""
        return self._remove(request, self._team(request, pk), request.user.pk)


class InvitationViewSet(viewsets.ViewSet):
    """Your invitations to teams: `GET /api/invitations/`, `POST …/{id}/accept/`, `POST …/{id}/decline/`."""

    lookup_value_regex = UUID_ROUTE

    def _invitation(self, request: Request, pk: str) -> TeamInvitation:
        invitation = TeamInvitation.objects.filter(id=pk, invitee=request.user).first()
        if invitation is None:
            raise NotFound(f"invitation {pk} not found")
        return invitation

    @extend_schema(responses=InvitationSerializer(many=True))
    def list(self, request: Request) -> Response:
        invitations = TeamInvitation.objects.filter(invitee=request.user).select_related("team", "invited_by")
        return Response(InvitationSerializer(invitations, many=True).data)

    @extend_schema(request=None, responses={200: TeamSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        """Join the team: you see its todos, its members see you."""
        try:
            team = services.team_accept(invitation=self._invitation(request, pk))
        except services.TeamFullError as exc:
            return Response({"detail": f"{exc}."}, status=status.HTTP_409_CONFLICT)
        return Response(TeamSerializer(Team.objects.prefetch_related("members").get(pk=team.pk)).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str) -> Response:
        self._invitation(request, pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
