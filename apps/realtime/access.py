"""Open sockets follow their credentials: a socket must not outlive the session or token it
was opened with, nor keep showing a team its user has left.

- After a logout, a deleted token, or a change of the user (deactivated, new password: every
  save), the user's sockets are told `auth.check`; each re-validates its own credential (the
  session as Django would load it, password hash included; the token and an active user) and
  closes with 4401 when it no longer holds. A logout names the session it ends, since Django
  flushes the session only after telling us.
- After leaving (or losing) a team, the user's sockets send the page `{"type": "reload"}`: what
  the user may see changed. Routing narrows by itself, by the events' metadata.
- A socket also re-checks every polystack.sockets.RECHECK_S, the net under changes that send no signal (a
  queryset.update(), an expired session).

The sockets' side of this (the re-check, 4401) is polystack.sockets.UserSocket's: every socket
of the user hears these messages, the sync protocol's too.

Messages go through the live stream after the transaction commits (polystack.live.tell_after_commit);
should Redis be down, the change itself still succeeds (and is logged), and the periodic re-check
closes the sockets.
"""
from django.contrib.auth import get_user_model, user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save
from rest_framework.authtoken.models import Token

from apps.todos.models import Team
from polystack import live
from polystack.sockets import ACCESS_CHANGED, AUTH_CHECK


def _on_logout(sender, request, user, **kwargs):
    if user is not None:
        live.tell_after_commit(user.pk, {"type": AUTH_CHECK,
                                         "endedSession": getattr(request.session, "session_key", None)})


def _on_user_saved(sender, instance, created, **kwargs):
    if not created:
        live.tell_after_commit(instance.pk, {"type": AUTH_CHECK})


def _on_token_deleted(sender, instance, **kwargs):
    live.tell_after_commit(instance.user_id, {"type": AUTH_CHECK})


def _on_membership_changed(sender, instance, action, pk_set, reverse, **kwargs):
    if action != "post_remove" or not pk_set:
        return
    users = [instance.pk] if reverse else pk_set  # reverse: user.teams.remove(team)
    for user_id in users:
        live.tell_after_commit(user_id, {"type": ACCESS_CHANGED})


def connect_signals() -> None:
    user_logged_out.connect(_on_logout, dispatch_uid="realtime-logout")
    post_save.connect(_on_user_saved, sender=get_user_model(), dispatch_uid="realtime-user-saved")
    post_delete.connect(_on_token_deleted, sender=Token, dispatch_uid="realtime-token-deleted")
    m2m_changed.connect(_on_membership_changed, sender=Team.members.through, dispatch_uid="realtime-membership")
