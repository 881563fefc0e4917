"""WebSocket authentication: the session cookie (Channels' AuthMiddlewareStack), or a DRF
token in the query string (`ws://host/ws/todos/?token=...`) for clients without a session.
A token that is given but wrong leaves the user anonymous: the socket closes with 4401.

The Origin check protects cookie sessions: a browser sends the cookie with any page's socket,
so a page of another site must not get in (cross-site WebSocket hijacking). Native clients (a
CLI, a desktop or mobile app) send no Origin and carry their token themselves: they may
connect without one. A socket that does send an Origin must come from one of ours, token or not.
"""
from urllib.parse import parse_qs

from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from polystack.sockets import off_thread


@off_thread
def _user_for_token(key: str):
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


def _query(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin1"))


class OriginCheck:
    """Channels' AllowedHostsOriginValidator for every socket that sends an Origin; a socket
    without one is let through only when it authenticates with a token (and then never with the
    session cookie: TokenQueryAuthMiddleware puts the token's user, or nobody, in the scope)."""

    def __init__(self, app):
        self.app = app
        self.browser = AllowedHostsOriginValidator(app)

    async def __call__(self, scope, receive, send):
        has_origin = any(name == b"origin" for name, _ in scope.get("headers", ()))
        if not has_origin and "token" in _query(scope):
            return await self.app(scope, receive, send)
        return await self.browser(scope, receive, send)


class TokenQueryAuthMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        query = _query(scope)
        if "token" in query:
            scope = {**scope, "user": await _user_for_token(query["token"][0][:64])}
        return await self.app(scope, receive, send)
