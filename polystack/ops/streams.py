"""The admin's streams page (/admin/streams/): what Kafka itself says, for staff, refreshed live —
every consumer group (state, members, what each owns, committed offsets, lag), every topic
(partitions, leader, replicas, in-sync replicas, offsets held) and every DLQ (letters parked,
the oldest) — and one correlationId followed through every group (polystack.ops.trace). The Kafka UI the plan names runs only in compose (`--profile ui`); this page needs
nothing but the admin.

Views only read (GET). The page asks `data.json` every REFRESH_S seconds; when Kafka does not
answer, the page says so (503 with the reason) and keeps its last numbers, marked stale.
"""
import functools
from dataclasses import asdict

from confluent_kafka import KafkaException
from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_GET

from polystack.api import CORRELATION_ID
from polystack.ops import deadletters, kafka_view, trace as tracing
from polystack.ops.monitor import Context
from polystack.streaming import kafka
from polystack.streaming.topics import resolved_specs

REFRESH_S = 5


@functools.cache
def admin_client():
    return kafka.admin_client()  # thread-safe; one per process, not one per request


def _wanted() -> dict[str, list[str]]:
    return Context(admin=admin_client()).consumer_groups()


def _group_json(group: kafka_view.GroupView) -> dict:
    return {"groupId": group.group_id, "state": group.state, "lag": group.lag,
            "members": [{"memberId": m.member_id, "clientId": m.client_id, "host": m.host,
                         "partitions": [f"{topic}[{partition}]" for topic, partition in m.partitions]}
                        for m in group.members],
            "partitions": [{**asdict(p), "lag": p.lag} for p in group.partitions]}


def _topic_json(topic: kafka_view.TopicView) -> dict:
    return {"name": topic.name, "held": topic.held, "underReplicated": topic.under_replicated,
            "partitions": [{"partition": p.partition, "leader": p.leader, "replicas": list(p.replicas),
                            "inSync": list(p.in_sync), "start": p.start, "end": p.end} for p in topic.partitions]}


def snapshot(group_id: str | None = None, topic: str | None = None) -> dict:
    """The page's data: all groups, topics and DLQs, or one group's or one topic's. Raises
    Http404 for a group or topic that is not ours, KafkaException when Kafka does not answer."""
    wanted = _wanted()
    if group_id is not None:
        if group_id not in wanted:
            raise Http404("not one of our consumer groups")
        return {"group": _group_json(kafka_view.groups(admin_client(), {group_id: wanted[group_id]})[0])}
    names = [spec.name for spec in resolved_specs()]
    if topic is not None:
        found = kafka_view.topics(admin_client(), [topic]) if topic in names else []
        if not found:
            raise Http404("not one of our topics")
        return {"topic": _topic_json(found[0])}
    return {"groups": [_group_json(g) for g in kafka_view.groups(admin_client(), wanted)],
            "topics": [_topic_json(t) for t in kafka_view.topics(admin_client(), names)],
            "dlqs": [{**dlq, "oldestAt": dlq["oldestAt"].isoformat() if dlq["oldestAt"] else None}
                     for dlq in deadletters.stats()]}


def _answer(request: HttpRequest, template: str, title: str, **which) -> HttpResponse:
    try:
        data, error = snapshot(**which), None
    except (KafkaException, TimeoutError) as exc:
        data, error = {}, f"Kafka does not answer: {exc}"
    if request.GET.get("format") == "json":
        return JsonResponse({"error": error} if error else data, status=503 if error else 200)
    return TemplateResponse(request, template, {**admin.site.each_context(request), "title": title,
                                                 "data": data, "error": error, "refresh_s": REFRESH_S,
                                                 "group_id": None, "topic": None, **which},
                            status=503 if error else 200)


@require_GET
def streams(request: HttpRequest) -> HttpResponse:
    return _answer(request, "admin/ops/streams.html", "Streams")


@require_GET
def group(request: HttpRequest, group_id: str) -> HttpResponse:
    return _answer(request, "admin/ops/stream_group.html", f"Consumer group {group_id}", group_id=group_id)


@require_GET
def topic(request: HttpRequest, topic: str) -> HttpResponse:
    return _answer(request, "admin/ops/stream_topic.html", f"Topic {topic}", topic=topic)


@require_GET
def trace(request: HttpRequest) -> HttpResponse:
    """/admin/streams/trace/?correlationId=…: one command followed through every group."""
    correlation_id = request.GET.get("correlationId", "").strip()
    context = {**admin.site.each_context(request), "title": "Follow a correlationId", "correlation_id": correlation_id,
               "trace": None, "error": None}
    status = 200
    if correlation_id and not CORRELATION_ID.match(correlation_id):
        context["error"], status = "A correlationId is 1 to 100 letters, digits, '.', '_', ':' or '-'.", 400
    elif correlation_id:
        try:
            context["trace"] = tracing.follow(correlation_id, admin=admin_client())
        except (KafkaException, TimeoutError) as exc:
            context["error"], status = f"Kafka does not answer: {exc}", 503
    return TemplateResponse(request, "admin/ops/stream_trace.html", context, status=status)


def urls():
    """The page's URLs, each behind the admin's own sign-in (staff only)."""
    view = admin.site.admin_view
    return [path("", view(streams), name="streams"),
            path("trace/", view(trace), name="stream-trace"),
            path("groups/<str:group_id>/", view(group), name="stream-group"),
            path("topics/<str:topic>/", view(topic), name="stream-topic")]
