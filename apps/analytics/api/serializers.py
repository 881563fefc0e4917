"""The analytics API's inputs: a time range, a bucket and a scope, checked before any query."""
import re
from datetime import UTC, datetime, timedelta

from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from apps.analytics import selectors
from apps.todos.models import Team
from polystack.api import StrictSerializer

SCOPE = re.compile(r"^(own|all|team:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
MAX_BUCKETS = 2000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


class AnalyticsQuery(StrictSerializer):
    """`from` and `to` (ISO 8601; default: the last 7 days), `bucket` (hour, day, week, month;
    default: hour up to two days, else day), `scope` (own, team:<id>, all; default: own)."""

    bucket = serializers.ChoiceField(choices=selectors.BUCKETS, required=False)
    scope = serializers.RegexField(SCOPE, required=False, default="own",
                                   error_messages={"invalid": "own, all, or team:<team id>"})
    by = serializers.ChoiceField(choices=("priority", "user"), required=False, default="priority")
    days = serializers.IntegerField(min_value=1, max_value=3650, required=False)
    top = serializers.IntegerField(min_value=1, max_value=50, required=False, default=10)

    def get_fields(self):
        fields = super().get_fields()  # `from` is a Python keyword: these two are added here
        fields["from"] = serializers.DateTimeField(required=False, default_timezone=UTC)
        fields["to"] = serializers.DateTimeField(required=False, default_timezone=UTC)
        return fields

    def validate(self, data: dict) -> dict:
        """The range, rounded out to whole buckets: `from` down to its bucket's start, `to` up
        to its bucket's end (so the bucket in progress is shown)."""
        to = data.get("to") or datetime.now(UTC)
        since = data.get("from") or to - timedelta(days=7)
        if not (EARLIEST <= since < to <= LATEST):
            raise serializers.ValidationError({"from": ["must be before `to`, both between 1970 and 9999"]})
        bucket = data.get("bucket") or ("hour" if to - since <= timedelta(days=2) else "day")
        if selectors.bucket_count(since, to, bucket) > MAX_BUCKETS:
            raise serializers.ValidationError({"bucket": [f"more than {MAX_BUCKETS} {bucket}s: choose a larger bucket "
                                                          "or a shorter range"]})
        start, end = selectors.bucket_floor(since, bucket), selectors.bucket_floor(to, bucket)
        if end < to:
            end = selectors.bucket_after(end, bucket)
        return {**data, "from": start, "to": end, "bucket": bucket}

    def query(self, user) -> selectors.Query:
        """The checked query for `user`; PermissionDenied for a scope they may not see."""
        data = self.validated_data
        kind, _, team_id = data["scope"].partition(":")
        if kind == "all" and not user.is_staff:
            raise PermissionDenied("only staff may look at everyone's analytics")
        if kind == "team" and not Team.objects.filter(id=team_id, members=user).exists():
            raise PermissionDenied("you are not a member of that team")
        return selectors.Query(data["from"], data["to"], data["bucket"],
                               selectors.Scope(kind, user.pk, team_id or None))
