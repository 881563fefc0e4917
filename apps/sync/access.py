"""A user who leaves (or loses) a team no longer sees its todos, and no event says so (membership
is plain state): their stream's epoch goes up in the same transaction, and each of their devices
takes a snapshot at its next connect. Open sockets are told at once by apps.realtime.access
(`access.changed`), and reset."""
from apps.sync import services


def on_membership_changed(sender, instance, action, pk_set, reverse, **kwargs):
    if action != "post_remove" or not pk_set:
        return
    for user_id in [instance.pk] if reverse else sorted(pk_set):  # reverse: user.teams.remove(team)
        services.user_access_narrowed(user_id=user_id)
