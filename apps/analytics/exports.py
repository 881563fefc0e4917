"""The dashboard's exports: every metric of a query as CSV, and as a PDF with charts and tables
(reportlab, drawn here: no browser, no external service)."""
import csv
import io
from datetime import datetime

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from apps.analytics.selectors import Result

PALETTE = [colors.HexColor(c) for c in ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
                                         "#db2777", "#4b5563", "#65a30d", "#9333ea")]
# The series charted per metric in the PDF (all of them go in its tables and in the CSV).
CHARTED_SERIES = 6


def label_of(t) -> str:
    if isinstance(t, datetime):
        return t.strftime("%Y-%m-%d %H:%M") if (t.hour or t.minute) else t.strftime("%Y-%m-%d")
    return f"{t:02d}:00" if isinstance(t, int) else str(t)


def csv_report(results: list[Result]) -> str:
    """One row per point: metric, unit, series, time (or hour of day), value."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["metric", "unit", "series", "t", "value"])
    for result in results:
        for series in result.as_json()["series"]:
            for point in series["points"]:
                writer.writerow([result.metric, result.unit, series["label"], point["t"],
                                 "" if point["value"] is None else point["value"]])
    return out.getvalue()


def _chart(result: Result, width: float, height: float) -> Drawing | None:
    series = list(result.series.items())[:CHARTED_SERIES]
    if not series or not any(v for _, points in series for v in points.values() if v):
        return None
    times = list(series[0][1])
    data = [[points.get(t) or 0 for t in times] for _, points in series]
    drawing = Drawing(width, height)
    bars = result.x == "hourOfDay" or result.unit in ("todos", "users", "events", "assignments") and len(times) <= 48
    chart = VerticalBarChart() if bars else HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, width - 160, height - 45
    chart.data = data
    step = max(1, len(times) // 8)
    chart.categoryAxis.categoryNames = [label_of(t) if i % step == 0 else "" for i, t in enumerate(times)]
    chart.categoryAxis.labels.fontSize = 6
    chart.categoryAxis.labels.angle = 30
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    for index in range(len(data)):
        color = PALETTE[index % len(PALETTE)]
        if bars:
            chart.bars[index].fillColor = color
            chart.bars[index].strokeColor = None
        else:
            chart.lines[index].strokeColor = color
            chart.lines[index].strokeWidth = 1.5
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = width - 110, height - 15
    legend.fontSize = 7
    legend.alignment = "right"
    legend.colorNamePairs = [(PALETTE[i % len(PALETTE)], label[:24]) for i, (label, _) in enumerate(series)]
    drawing.add(legend)
    return drawing


def _table(result: Result) -> Table:
    labels = list(result.series)
    times = list(next(iter(result.series.values()))) if result.series else []
    rows = [["", *[label[:18] for label in labels]]]
    for t in times:
        row = [label_of(t)]
        for label in labels:
            value = result.series[label].get(t)
            row.append("–" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value)))
        rows.append(row)
    table = Table(rows, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONTSIZE", (0, 0), (-1, -1), 7),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e2e8f0")),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.HexColor("#94a3b8")),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f8fafc")]),
    ]))
    return table


def pdf_report(results: list[Result], *, title: str) -> bytes:
    """A PDF: per metric a heading, a chart of its main series and the table of every series."""
    out = io.BytesIO()
    styles = getSampleStyleSheet()
    document = SimpleDocTemplate(out, pagesize=A4, title=title, leftMargin=1.5 * cm, rightMargin=1.5 * cm,
                                 topMargin=1.5 * cm, bottomMargin=1.5 * cm)
    story = [Paragraph(title, styles["Title"])]
    if results:
        query = results[0].query
        story.append(Paragraph(
            f"{label_of(query.start)} to {label_of(query.end)} (UTC), per {query.bucket}, scope {query.scope.label}",
            styles["Normal"]))
    width = A4[0] - 3 * cm
    for result in results:
        block = [Spacer(1, 0.4 * cm), Paragraph(f"{result.metric} ({result.unit})", styles["Heading2"])]
        if result.current is not None:
            block.append(Paragraph("Now: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.current.items()),
                                   styles["Normal"]))
        chart = _chart(result, width, 6 * cm)
        if chart is not None:
            block.append(chart)
        story.append(KeepTogether(block))
        story.append(_table(result))
    document.build(story)
    return out.getvalue()
