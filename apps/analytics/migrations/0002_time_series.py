"""The analytics time series: tables partitioned by time (apps.analytics.partitions keeps
their weekly partitions). Django has no partitioned tables, so they are SQL here."""
from django.db import migrations

WINDOW = """
CREATE TABLE analytics_window (
    window_name text NOT NULL,        -- hourly | daily | rolling | sliding (apps.analytics.windows)
    owner_id bigint NOT NULL,         -- the user whose events the window folded (the stream's key)
    team_id uuid NULL,                -- the todos' team; NULL: the owner's own todos
    metric text NOT NULL,             -- apps.analytics.facts.M_*
    dim text NOT NULL,                -- what the metric is broken down by (a priority, a user, ...)
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL,
    value bigint NOT NULL             -- the window's absolute value: writing it again changes nothing
) PARTITION BY RANGE (window_start);
-- One row per window, metric and breakdown (NULLS NOT DISTINCT: no team is one team here).
-- It serves one user's time ranges; everyone's and a team's read the week partitions the
-- range touches (pruning), which is what a time index would lead to on a weekly partition,
-- without the cost of keeping one up to date on every upsert.
CREATE UNIQUE INDEX analytics_window_key
    ON analytics_window (window_name, metric, owner_id, window_start, team_id, dim) NULLS NOT DISTINCT;
"""

HEALTH = """
CREATE TABLE analytics_health_sample (
    sampled_at timestamptz NOT NULL,  -- the sampling slot (every ANALYTICS_HEALTH_EVERY_S)
    owner_id bigint NOT NULL,
    team_id uuid NULL,
    metric text NOT NULL,             -- overdue | aging | unassigned | high_backlog
    value integer NOT NULL
) PARTITION BY RANGE (sampled_at);
CREATE UNIQUE INDEX analytics_health_key
    ON analytics_health_sample (metric, owner_id, sampled_at, team_id) NULLS NOT DISTINCT;
CREATE INDEX analytics_health_time ON analytics_health_sample (metric, sampled_at);
CREATE INDEX analytics_health_team ON analytics_health_sample (team_id, metric, sampled_at)
    WHERE team_id IS NOT NULL;
"""


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_late_event")]

    operations = [
        migrations.RunSQL(WINDOW, reverse_sql="DROP TABLE analytics_window"),
        migrations.RunSQL(HEALTH, reverse_sql="DROP TABLE analytics_health_sample"),
    ]
