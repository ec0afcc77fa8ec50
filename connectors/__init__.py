"""Kafka and Redis I/O shared by the job, the collector and the CLI (kafka-python, redis-py; no Flink,
no CLI). Layering: pyproject.toml ``[tool.importlinter]``."""
