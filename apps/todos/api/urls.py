from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from apps.todos.api.teams import InvitationViewSet, TeamViewSet
from apps.todos.api.views import TodoViewSet

router = DefaultRouter(trailing_slash=True)
router.register("todos", TodoViewSet, basename="todo")
router.register("teams", TeamViewSet, basename="team")
router.register("invitations", InvitationViewSet, basename="invitation")

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="auth-token"),
    *router.urls,
]
