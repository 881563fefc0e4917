"""WebSocket authentication: the session cookie (Channels' AuthMiddlewareStack), or a DRF
token in the query string (`ws://host/ws/todos/?token=...`) for clients without a session.
A token that is given but wrong leaves the user anonymous: the socket closes with 4401."""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token


@database_sync_to_async
def _user_for_token(key: str):
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenQueryAuthMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        if "token" in query:
            scope = {**scope, "user": await _user_for_token(query["token"][0][:64])}
        return await self.app(scope, receive, send)
