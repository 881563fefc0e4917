from django.db import migrations, models

# The priority of todos made before the write side kept it: the projection's, where it exists.
COPY_PRIORITY = """
DO $$ BEGIN
  IF to_regclass('projections_todoview') IS NOT NULL THEN
    UPDATE todos_todostate s SET priority = v.priority FROM projections_todoview v WHERE v.id = s.id;
  END IF;
END $$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('todos', '0005_todostate_schedule'),
    ]

    operations = [
        migrations.AddField(
            model_name='todostate',
            name='priority',
            field=models.CharField(default='medium', max_length=10),
        ),
        migrations.AddField(
            model_name='todostate',
            name='field_clocks',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunSQL(COPY_PRIORITY, migrations.RunSQL.noop),
    ]
