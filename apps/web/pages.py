"""The web page: server-rendered with a little JavaScript (static/web/app.js); it shows every
feature, so it lives in the top layer (apps.web), which may use every app.

`/todos/` renders what the user may see together with the projection's position, so that
the page's socket asks for exactly what happened after the page was read; from then on the
page follows live frames, fills version gaps through the socket, and sends commands to the
REST API with the session (and its CSRF token).
"""
import hashlib
import json
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from apps.notifications import selectors as notification_selectors
from apps.notifications import services as notification_services
from apps.notifications.api.serializers import notification_json
from apps.notifications.models import IN_APP
from apps.projections import selectors
from apps.projections.api.serializers import TodoSerializer
from apps.todos.api.teams import InvitationSerializer, TeamSerializer
from apps.todos.models import Team, TeamInvitation
from polystack.api import correlation_id

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
    notifications = notification_selectors.notification_list(user_id=user.pk, channel=IN_APP)[:30]
    bootstrap = {
        "me": {"id": str(user.pk), "username": user.username},
        "positions": positions,
        "todos": TodoSerializer(rows, many=True).data,
        "teams": TeamSerializer(teams, many=True).data,
        "invitations": InvitationSerializer(
            TeamInvitation.objects.filter(invitee=user).select_related("team", "invited_by"), many=True).data,
        "people": _people(user),
        "notifications": [notification_json(n) for n in notifications],
        "unreadCount": notification_selectors.unread_count(user_id=user.pk),
        "preferences": notification_selectors.preferences_of(user_id=user.pk),
    }
    return render(request, "web/todos.html", {"bootstrap": bootstrap})


@login_required
def analytics(request: HttpRequest) -> HttpResponse:
    """The analytics dashboard: charts of /api/analytics/, refreshed by live frames."""
    user = request.user
    scopes = [{"value": "own", "label": "My todos"}]
    scopes += [{"value": f"team:{team.id}", "label": f"Team {team.name}"}
               for team in Team.objects.filter(members=user).order_by("name")]
    if user.is_staff:
        scopes.append({"value": "all", "label": "Everyone"})
    return render(request, "web/analytics.html", {"bootstrap": {"scopes": scopes}})


# What the service worker keeps for opening the todo page offline: the page and these assets.
OFFLINE_ASSETS = ("web/app.css", "web/sync.js", "web/app.js")
SERVICE_WORKER = Path(__file__).parent / "static" / "web" / "sw.js"


def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker (static/web/sw.js), served at the site's root so that its scope is
    the whole site, with what it keeps: the page's and its assets' URLs (hashed names when
    deployed). Its version changes with them, which replaces an installed worker. Nothing in it
    is private (the page it keeps is fetched with the user's own cookie, in their browser)."""
    shell = {"page": reverse("todos"), "assets": [static(asset) for asset in OFFLINE_ASSETS]}
    code = SERVICE_WORKER.read_text()
    shell["version"] = hashlib.sha256((json.dumps(shell) + code).encode()).hexdigest()[:12]
    return HttpResponse(f"const SHELL = {json.dumps(shell)};\n{code}", content_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})


# How a snooze link that cannot snooze answers (services.SnoozeLinkError.reason).
SNOOZE_LINK_STATUS = {"invalid": 404, "expired": 410, "used": 410, "refused": 409}


@require_http_methods(["GET", "POST"])
def snooze_link(request: HttpRequest, token: str) -> HttpResponse:
    """A reminder email's snooze link. The signed link is the authority (no sign-in: it is opened
    from a mailbox); GET only shows a button, because mail scanners open links; POST snoozes,
    once."""
    try:
        if request.method == "POST":
            result = notification_services.snooze_link_use(token=token, correlation_id=correlation_id(request))
            return render(request, "web/snooze.html", {"snoozed_until": result.snooze_until})
        email = notification_services.snooze_link_read(token=token)
    except notification_services.SnoozeLinkError as exc:
        return render(request, "web/snooze.html", {"error": str(exc)}, status=SNOOZE_LINK_STATUS[exc.reason])
    return render(request, "web/snooze.html", {"email": email,
                                               "delay_minutes": notification_services.SNOOZE_LINK_DELAY // timedelta(minutes=1)})
