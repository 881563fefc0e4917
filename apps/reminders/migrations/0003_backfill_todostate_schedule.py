"""TodoState learned its schedule (due date, schedule version) after the due table existed: fill
it in from the due table for todos scheduled before, or their reminders would never pass the
scheduler's fire-time check."""
from django.db import migrations

BACKFILL = """
UPDATE todos_todostate AS t
   SET due_date = s.due_date, schedule_version = s.scheduled_version
  FROM reminders_todoschedule AS s
 WHERE t.id = s.todo_id AND t.schedule_version = 0 AND s.scheduled_version > 0
"""


class Migration(migrations.Migration):
    dependencies = [
        ("reminders", "0002_reminder_correlation"),
        ("todos", "0005_todostate_schedule"),
    ]

    operations = [migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop)]
