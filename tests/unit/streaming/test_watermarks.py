"""kafka.high_watermark: a partition whose leader is not settled yet (a topic created a moment
ago) is asked again; other errors are not."""
import pytest
from confluent_kafka import KafkaError, KafkaException

from polystack.streaming import kafka


class Flaky:
    def __init__(self, errors):
        self.errors = list(errors)

    def get_watermark_offsets(self, partition, timeout):
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 0, 42


def test_a_leader_not_known_yet_is_asked_again():
    assert kafka.high_watermark(Flaky([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE]),
                                "t", 0) == 42


def test_other_errors_are_raised():
    with pytest.raises(KafkaException):
        kafka.high_watermark(Flaky([KafkaError.TOPIC_AUTHORIZATION_FAILED]), "t", 0)


def test_a_topic_the_client_does_not_know_yet_is_asked_again_for_both_ends():
    """A changelog topic made a moment ago: the client's metadata lacks its partition at first
    (a transactional role crashed on it at start)."""
    assert kafka.watermarks(Flaky([KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC]), "t", 0) == (0, 42)
