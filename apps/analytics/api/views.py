"""`GET /api/analytics/` (the metrics there are) and `GET /api/analytics/<metric>/` for each,
with `from`, `to`, `bucket` and `scope`; `GET /api/analytics/report.csv` and `.pdf` export them."""
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.analytics import exports, selectors
from apps.analytics.api.serializers import AnalyticsQuery

PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="Start (ISO 8601); default: 7 days before `to`."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="End (ISO 8601, exclusive); default: now."),
    OpenApiParameter("bucket", str, enum=list(selectors.BUCKETS),
                     description="hour, day, week or month; default: hour for two days or less, else day."),
    OpenApiParameter("scope", str, description="own (default), team:<team id> (a member), or all (staff)."),
    OpenApiParameter("by", str, enum=["priority", "user"], description="completion-rate: the breakdown."),
    OpenApiParameter("days", int, description="health: not updated in this many days counts as aging."),
    OpenApiParameter("top", int, description="assignments: how many pairs (1-50, default 10)."),
]


def run_metric(name: str, request: Request, *, ignore: tuple[str, ...] = ()) -> selectors.Result:
    """One metric for the request's query string (400 for a bad one, 403 for a scope not yours)."""
    params = AnalyticsQuery(data={k: v for k, v in request.query_params.items() if k not in ignore})
    params.is_valid(raise_exception=True)
    query = params.query(request.user)
    data = params.validated_data
    if name == "completion-rate":
        return selectors.completion_rate(query, by=data["by"])
    if name == "health":
        return selectors.health(query, aging_days=data.get("days") or settings.ANALYTICS_AGING_DAYS)
    if name == "assignments":
        return selectors.assignments(query, top=data["top"])
    return selectors.METRICS[name](query)


class AnalyticsViewSet(viewsets.ViewSet):
    lookup_field = "metric"
    lookup_value_regex = r"[a-z-]{1,40}"

    @extend_schema(operation_id="analytics_metrics", responses={200: OpenApiTypes.OBJECT})
    def list(self, request: Request) -> Response:
        """The metrics, each with what it measures."""
        return Response({"metrics": [
            {"name": name, "description": (function.__doc__ or "").strip().split("\n")[0],
             "url": request.build_absolute_uri(f"/api/analytics/{name}/")}
            for name, function in selectors.METRICS.items()]})

    @extend_schema(parameters=[*PARAMETERS, OpenApiParameter("as", str, enum=["csv", "pdf"], required=True)],
                   responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=False, methods=["get"])
    def report(self, request: Request) -> HttpResponse:
        """Every metric for the query, `as=csv` (one row per point) or `as=pdf` (charts and tables)."""
        kind = request.query_params.get("as")
        if kind not in ("csv", "pdf"):
            raise ValidationError({"as": ["csv or pdf"]})
        results = [run_metric(name, request, ignore=("as",)) for name in selectors.METRICS]
        stamp = results[0].query.start.strftime("%Y%m%d")
        if kind == "csv":
            answer = HttpResponse(exports.csv_report(results), content_type="text/csv; charset=utf-8")
        else:
            answer = HttpResponse(exports.pdf_report(results, title="PolyStack analytics"),
                                  content_type="application/pdf")
        answer["Content-Disposition"] = f'attachment; filename="polystack-analytics-{stamp}.{kind}"'
        return answer

    @extend_schema(operation_id="analytics_metric", parameters=PARAMETERS, responses={200: OpenApiTypes.OBJECT})
    def retrieve(self, request: Request, metric: str) -> Response:
        """One metric over time: `series` of `points` ({t, value}), one series per breakdown."""
        if metric not in selectors.METRICS:
            raise NotFound(f"no metric {metric!r}; see /api/analytics/")
        return Response(run_metric(metric, request).as_json())
