"""The project's URLs plus `api/bench/plain-todos/`: a plain DRF create of the same row the
projection would write, with no events, outbox or Kafka: the baseline of `bench.commands`."""
import uuid

from django.urls import path
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.projections.models import TodoView
from apps.projections.api.serializers import TodoSerializer
from apps.todos.api.serializers import TodoCreateSerializer
from apps.web.urls import urlpatterns as project_urls


class PlainCreate(APIView):
    def post(self, request):
        serializer = TodoCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        now = timezone.now()
        todo = TodoView.objects.create(
            id=uuid.uuid4(), user_id=request.user.pk, title=data["title"], description=data["description"],
            priority=data["priority"], due_date=data["dueDate"], created_at=now, updated_at=now, version=1,
        )
        return Response(TodoSerializer(todo).data, status=status.HTTP_201_CREATED)


urlpatterns = [path("api/bench/plain-todos/", PlainCreate.as_view()), *project_urls]
