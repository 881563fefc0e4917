"""DLQ triage in the admin: every dead letter of every DLQ topic (indexed by `runconsumer
dlq-index`), with filters and search, the payload pretty-printed, and the actions — redrive to
the original topic or its first retry topic, discard with a reason — each recorded with who and
when. The admin's index shows how many letters each DLQ holds (templates/admin/ops/index.html)."""
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from polystack.admin import ReadOnlyAdmin
from polystack.ops import deadletters
from polystack.ops.models import DeadLetter, DeadLetterAction


# The index with the DLQ counts above the apps (the site's one index, so set here, once).
admin.site.index_template = "admin/ops/index.html"


class ActionInline(admin.TabularInline):
    model = DeadLetterAction
    fields = readonly_fields = ("at", "action", "actor_name", "detail")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("id", "topic", "original", "error_class", "consumer_group", "attempts", "parked_at", "state")
    list_filter = ("state", "topic", "error_class", "consumer_group")
    search_fields = ("error_message", "correlation_id", "original_topic", "error_class")
    date_hierarchy = "parked_at"
    inlines = [ActionInline]
    actions = ["redrive_to_original", "redrive_to_retry", "discard"]
    fields = ("topic", "partition", "offset", "state", "original", "consumer_group", "error_class", "error_message",
              "attempts", "correlation_id", "parked_at", "indexed_at", "redriven_to", "payload", "header_table")
    readonly_fields = fields

    def has_change_permission(self, request, obj=None):
        # The list's actions (redrive, discard) need the change permission; a letter is never edited.
        return obj is None and admin.ModelAdmin.has_change_permission(self, request)

    def has_view_permission(self, request, obj=None):
        return admin.ModelAdmin.has_view_permission(self, request, obj)

    @admin.display(description="original")
    def original(self, letter: DeadLetter) -> str:
        if not letter.original_topic:
            return "(unknown)"
        return f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}"

    @admin.display(description="redriven to")
    def redriven_to(self, letter: DeadLetter) -> str:
        if not letter.redrive_topic:
            return "-"
        return f"{letter.redrive_topic}[{letter.redrive_partition}]@{letter.redriven_offset}"

    @admin.display(description="payload")
    def payload(self, letter: DeadLetter):
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", deadletters.letter_payload(letter))

    @admin.display(description="headers")
    def header_table(self, letter: DeadLetter):
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((name, value) for name, value in letter.headers))
        return format_html("<table>{}</table>", rows)

    def _redrive(self, request, queryset, to: str) -> None:
        outcome = deadletters.letters_redrive(ids=list(queryset.values_list("id", flat=True)), to=to,
                                              actor=request.user, actor_name=request.user.get_username())
        self.message_user(request, outcome.summary("redriven"), messages.WARNING if outcome.skipped else messages.SUCCESS)

    @admin.action(description="Redrive the selected letters to their original topic", permissions=["change"])
    def redrive_to_original(self, request, queryset):
        self._redrive(request, queryset, "original")

    @admin.action(description="Redrive the selected letters to their first retry topic", permissions=["change"])
    def redrive_to_retry(self, request, queryset):
        self._redrive(request, queryset, "retry")

    @admin.action(description="Discard the selected letters (with a reason)", permissions=["change"])
    def discard(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("confirm") and reason:
            outcome = deadletters.letters_discard(ids=list(queryset.values_list("id", flat=True)), reason=reason,
                                                  actor=request.user, actor_name=request.user.get_username())
            self.message_user(request, outcome.summary("discarded"),
                              messages.WARNING if outcome.skipped else messages.SUCCESS)
            return None
        return TemplateResponse(request, "admin/ops/discard.html", {
            **self.admin_site.each_context(request), "title": "Discard dead letters", "letters": queryset,
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "missing_reason": bool(request.POST.get("confirm")),
        })
