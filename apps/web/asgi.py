"""ASGI entry point for daphne: HTTP through Django, WebSockets through Channels."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "polystack.settings.production")  # local: see the Makefile
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.realtime.auth import OriginCheck, TokenQueryAuthMiddleware  # noqa: E402
from apps.realtime.routing import websocket_urlpatterns as realtime_sockets  # noqa: E402
from apps.sync.routing import websocket_urlpatterns as sync_sockets  # noqa: E402
from polystack import gcpolicy, metrics  # noqa: E402

gcpolicy.start()  # thousands of long-lived sockets: keep full collections short (see gcpolicy)
metrics.serve("web")  # on METRICS_PORT, never on the web port

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginCheck(
            AuthMiddlewareStack(TokenQueryAuthMiddleware(URLRouter(realtime_sockets + sync_sockets)))
        ),
    }
)
