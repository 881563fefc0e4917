"""`{% dlq_stats %}`: the letters each DLQ holds, for the admin's index."""
from django import template

from polystack.ops import deadletters

register = template.Library()


@register.simple_tag
def dlq_stats() -> list[dict]:
    return deadletters.stats()
