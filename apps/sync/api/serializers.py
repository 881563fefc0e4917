"""Input of the sync protocol's mutations (socket frames) and of conflict resolution (REST):
the same rules as the todo API's commands, camelCase."""
from rest_framework import serializers

from apps.sync.conflicts import POLICIES
from apps.todos.api.serializers import active_user
from apps.todos.events import PRIORITIES
from polystack.api import StrictSerializer

CREATE, UPDATE, COMPLETE, DELETE = "create", "update", "complete", "delete"
MAX_MUTATION_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1
TITLE_MAX, DESCRIPTION_MAX = 200, 5000  # as the todo API's


class CreateArgs(StrictSerializer):
    title = serializers.CharField(max_length=TITLE_MAX)
    description = serializers.CharField(max_length=DESCRIPTION_MAX, required=False, allow_blank=True, default="")
    priority = serializers.ChoiceField(choices=PRIORITIES, required=False, default="medium")
    teamId = serializers.UUIDField(required=False, allow_null=True, default=None)


class UpdateArgs(StrictSerializer):
    """The fields a device edits; each is merged on its own (apps.sync.conflicts)."""

    title = serializers.CharField(max_length=TITLE_MAX, required=False)
    description = serializers.CharField(max_length=DESCRIPTION_MAX, required=False, allow_blank=True)
    priority = serializers.ChoiceField(choices=PRIORITIES, required=False)
    assignedTo = serializers.CharField(max_length=64, required=False)

    def validate_assignedTo(self, value):
        active_user(value)  # a field error for nobody; the command checks who may be assigned
        return value

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give a field to change: title, description, priority or assignedTo.")
        return attrs


class NoArgs(StrictSerializer):
    pass


ARGS = {CREATE: CreateArgs, UPDATE: UpdateArgs, COMPLETE: NoArgs, DELETE: NoArgs}


class MutationSerializer(StrictSerializer):
    """One mutation: {id, name, todoId, baseVersion, hlc, args}. `id` is the device's mutation
    counter (its last + 1); `baseVersion` the version of the todo the device had when it made
    the change (0 for a todo it created itself and has not seen back yet)."""

    id = serializers.IntegerField(min_value=1, max_value=MAX_MUTATION_ID)
    name = serializers.ChoiceField(choices=list(ARGS))
    todoId = serializers.UUIDField()
    baseVersion = serializers.IntegerField(min_value=0, max_value=MAX_VERSION, required=False, default=0)
    hlc = serializers.CharField(max_length=30)
    args = serializers.DictField(required=False, default=dict)

    def validate(self, attrs):
        args = ARGS[attrs["name"]](data=attrs["args"])
        if not args.is_valid():
            raise serializers.ValidationError({"args": args.errors})
        return {**attrs, "args": args.validated_data}


class ResolveSerializer(StrictSerializer):
    """The value a person chose for a conflicting field (one of the two, or a third); checked
    against the field's own rules by `value_of_field`."""

    value = serializers.JSONField()


def value_of_field(field: str, value):
    """`value` as the field holds it, or a ValidationError."""
    checks = {
        "title": serializers.CharField(max_length=TITLE_MAX),
        "description": serializers.CharField(max_length=DESCRIPTION_MAX, allow_blank=True),
        "priority": serializers.ChoiceField(choices=PRIORITIES),
        "assignedTo": serializers.CharField(max_length=64),
        "completed": serializers.BooleanField(),
    }
    if field not in checks or value is None:
        raise serializers.ValidationError({"value": ["Give a value of the field."]})
    if not isinstance(value, bool if field == "completed" else str):
        raise serializers.ValidationError({"value": [f"Give a {'true or false' if field == 'completed' else 'text'}."]})
    checked = checks[field].run_validation(value)
    if field == "assignedTo":
        active_user(checked)
    return checked


class PolicySerializer(StrictSerializer):
    conflictPolicy = serializers.ChoiceField(choices=[value for value, _ in POLICIES])
