"""REST plumbing every app's API shares: the JSON parser (set in REST_FRAMEWORK), strict input
serializers and the correlation id of a request."""
import re
import uuid

from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request

CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, but a body nested deeper than Python's parser can recurse (`[[[[…`)
    is a 400 like any other malformed JSON, not a RecursionError and a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, naming them, instead of ignoring a typo silently."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def correlation_id(request: Request) -> str:
    """The caller's X-Correlation-ID when it is sane, else a new one."""
    given = request.headers.get("X-Correlation-ID", "")
    return given if CORRELATION_ID.match(given) else str(uuid.uuid4())
