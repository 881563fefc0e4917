"""Team membership is plain state: no event tells a user's stream that it changed.

- A user who leaves (or loses) a team no longer sees its todos: their stream's epoch goes up in
  the same transaction, and each of their devices takes a snapshot at its next connect. Open
  sockets are told at once by apps.realtime.access (`access.changed`), and reset.
- A user who joins a team sees its todos, whose earlier events never named them: the todos'
  latest state is copied into theirs, and their devices take a snapshot likewise
  (services.user_access_widened tells the open sockets itself). When some todos' newest events
  were still on their way to the sink, a Celery task copies again, at growing intervals, until
  the user holds every team todo at its latest version (copying again is idempotent).
"""
from django.db import transaction

from apps.sync import services, tasks


def _widened(user_id: int, team_ids: list) -> None:
    if not services.user_access_widened(user_id=user_id, team_ids=team_ids):
        return  # the copy is complete
    teams = [str(team) for team in team_ids]
    transaction.on_commit(lambda: tasks.team_todos_catch_up.apply_async(
        args=[user_id, teams], countdown=tasks.catch_up_delay(0)), robust=True)


def on_membership_changed(sender, instance, action, pk_set, reverse, **kwargs):
    if action not in ("post_remove", "post_add") or not pk_set:
        return
    if action == "post_remove":
        for user_id in [instance.pk] if reverse else sorted(pk_set):  # reverse: user.teams.remove(team)
            services.user_access_narrowed(user_id=user_id)
    elif reverse:  # user.teams.add(team, ...)
        _widened(instance.pk, sorted(pk_set))
    else:  # team.members.add(user, ...)
        for user_id in sorted(pk_set):
            _widened(user_id, [instance.pk])
