"""The web app: server-rendered pages with a little JavaScript (static/web/app.js).

`/todos/` renders what the user may see together with the projection's position, so that
the page's socket asks for exactly what happened after the page was read; from then on the
page follows live frames, fills version gaps through the socket, and sends commands to the
REST API with the session (and its CSRF token).
"""
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from apps.notifications.api.views import preferences_of, unread_count
from apps.notifications.models import IN_APP, Notification
from apps.notifications.tasks import as_json
from apps.projections import selectors
from apps.todos.api.serializers import TodoSerializer
from apps.todos.api.teams import InvitationSerializer, TeamSerializer
from apps.todos.models import Team, TeamInvitation

MAX_TODOS_ON_PAGE = 1000


def _people(user) -> list[dict]:
    """Whom the user can assign to: themself and everyone they share a team with."""
    users = get_user_model().objects.filter(teams__members=user, is_active=True).distinct().order_by("username")
    people = {user.pk: user.username, **dict(users.values_list("pk", "username"))}
    return [{"id": str(pk), "username": name} for pk, name in sorted(people.items(), key=lambda p: p[1])]


@login_required
@ensure_csrf_cookie
def todos(request: HttpRequest) -> HttpResponse:
    user = request.user
    # The position first, then the rows: an event in between is sent again over the socket
    # (and ignored, its version being known) instead of being missed.
    positions = selectors.projected_positions()
    rows = selectors.todo_list(user=user)[:MAX_TODOS_ON_PAGE]
    teams = Team.objects.filter(members=user).prefetch_related("members")
    notifications = Notification.objects.filter(recipient=user, channel=IN_APP)[:30]
    bootstrap = {
        "me": {"id": str(user.pk), "username": user.username},
        "positions": positions,
        "todos": TodoSerializer(rows, many=True).data,
        "teams": TeamSerializer(teams, many=True).data,
        "invitations": InvitationSerializer(
            TeamInvitation.objects.filter(invitee=user).select_related("team", "invited_by"), many=True).data,
        "people": _people(user),
        "notifications": [as_json(n) for n in notifications],
        "unreadCount": unread_count(user.pk),
        "preferences": preferences_of(user.pk),
    }
    return render(request, "web/todos.html", {"bootstrap": bootstrap})
