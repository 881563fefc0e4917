"""URL routes of the whole project: the web page, health probes, the admin, the REST API of
every app (composed here, in one router) and its schema."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from apps.analytics.api.views import AnalyticsViewSet
from apps.notifications.api.views import NotificationViewSet
from apps.sync.api.views import ConflictViewSet, DeviceViewSet, SyncSettingsView
from apps.todos.api.teams import InvitationViewSet, TeamViewSet
from apps.web import pages
from apps.web.api.todos import TodoViewSet
from polystack import health
from polystack.ops import streams

router = DefaultRouter(trailing_slash=True)
router.register("todos", TodoViewSet, basename="todo")
router.register("teams", TeamViewSet, basename="team")
router.register("invitations", InvitationViewSet, basename="invitation")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("analytics", AnalyticsViewSet, basename="analytics")
router.register("devices", DeviceViewSet, basename="device")
router.register("conflicts", ConflictViewSet, basename="conflict")

urlpatterns = [
    path("", RedirectView.as_view(url="/todos/", permanent=False)),
    path("todos/", pages.todos, name="todos"),
    path("analytics/", pages.analytics, name="analytics"),
    path("sw.js", pages.service_worker, name="service-worker"),
    path("reminders/snooze/<str:token>/", pages.snooze_link, name="snooze-link"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/streams/", include(streams.urls())),
    path("admin/", admin.site.urls),
    path("api/auth/token/", obtain_auth_token, name="auth-token"),
    path("api/sync/settings/", SyncSettingsView.as_view(), name="sync-settings"),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
