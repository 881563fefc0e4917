"""What counts as fatal for a client of ours: librdkafka's fatal errors, and the consumer's
`_FATAL`, whose `fatal()` is false (confluent-kafka-python #869). Seen in the chaos run: a static
member fenced after a broker restart got `_FATAL` from poll, logged it as a warning, and never
consumed again."""
from confluent_kafka import KafkaError

from polystack.streaming.kafka import is_fatal


def test_the_consumers_fatal_code_is_fatal_though_its_flag_says_not():
    fenced = KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced by other consumer with "
                                           "same group.instance.id")
    assert not fenced.fatal()
    assert is_fatal(fenced)


def test_a_fatal_flag_is_fatal_and_a_passing_error_is_not():
    assert is_fatal(KafkaError(KafkaError._FENCED, fatal=True))
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT, "broker down"))
    assert not is_fatal(KafkaError(KafkaError._PARTITION_EOF))
