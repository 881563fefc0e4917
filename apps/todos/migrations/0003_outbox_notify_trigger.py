"""The outbox wakes the relay itself: a statement-level trigger NOTIFYs `todos_outbox` after
every INSERT into it. The NOTIFY is delivered when the inserting transaction commits (never for
one rolled back) and PostgreSQL folds repeats within a transaction into one, so a command costs
no extra round trip and any writer of outbox rows, not only our services, wakes the relay."""
from django.db import migrations

CREATE = """
CREATE FUNCTION todos_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('todos_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER todos_outbox_notify AFTER INSERT ON todos_outboxevent
    FOR EACH STATEMENT EXECUTE FUNCTION todos_outbox_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS todos_outbox_notify ON todos_outboxevent;
DROP FUNCTION IF EXISTS todos_outbox_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("todos", "0002_team_todostate_team")]

    operations = [migrations.RunSQL(CREATE, DROP)]
