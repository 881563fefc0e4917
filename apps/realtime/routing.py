from django.urls import path

from apps.realtime.sockets import TodoSocket

websocket_urlpatterns = [path("ws/todos/", TodoSocket.as_asgi())]
