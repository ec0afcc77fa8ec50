"""The services of the local stack, one module each (``kafka_broker``, ``redis_server``,
``flink_cluster``), the jars they need (``jars``) and what they share (``process``); the
``intentflow stack`` command that starts and stops them is ``intentflow/stack.py``."""
