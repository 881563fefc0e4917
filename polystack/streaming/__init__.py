"""Kafka plumbing shared by every app: topics as code, the consumer registry and runner."""
