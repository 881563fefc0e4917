from django.urls import path

from apps.sync.sockets import SyncSocket

websocket_urlpatterns = [path("ws/sync/", SyncSocket.as_asgi())]
