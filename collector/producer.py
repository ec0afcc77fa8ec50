"""The collector's Kafka producer: :class:`Producer` sends a request's records and waits for every
acknowledgement (``acks="all"``) until the request's deadline, or raises :class:`KafkaUnavailable`."""
from __future__ import annotations

import threading
import time
from typing import Callable

from collector.settings import CollectorSettings


class KafkaUnavailable(RuntimeError):
    """The broker cannot be reached or did not acknowledge in time."""


class Producer:
    """A lazily (re)connecting kafka-python producer; every call blocks, so run it in an executor."""

    #: least time between two connection attempts while the broker is down, s (our choice).
    RECONNECT_INTERVAL_S = 1.0

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self._producer = None
        self._lock = threading.Lock()
        self._last_attempt = 0.0

    def _get(self):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        with self._lock:
            if self._producer is not None:
                return self._producer
            now = time.monotonic()
            if now - self._last_attempt < self.RECONNECT_INTERVAL_S:
                raise KafkaUnavailable("broker unreachable (retrying)")
            self._last_attempt = now
            timeout_ms = int(self.settings.produce_timeout_s * 1000)
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    acks="all",
                    linger_ms=self.settings.linger_ms,
                    bootstrap_timeout_ms=min(timeout_ms, 2000),
                    max_block_ms=timeout_ms,
                    request_timeout_ms=max(1000, timeout_ms // 2),
                    delivery_timeout_ms=timeout_ms + self.settings.linger_ms,
                    max_request_size=4 * 1024 * 1024,
                    client_id="intentflow-collector",
                    **self.settings.kafka_security.python_kwargs(),
                )
            except KafkaError as exc:
                raise KafkaUnavailable(f"broker unreachable: {exc}") from None
            return self._producer

    def connected(self) -> bool:
        """True when a producer could bootstrap from the broker (connecting now if there is none yet)."""
        try:
            self._get()
            return True
        except KafkaUnavailable:
            return False

    def produce(self, records: list[tuple[str, bytes, bytes]], deadline_s: float | None = None,
                on_ack: Callable[[int], None] | None = None) -> None:
        """Send ``(topic, key, value)`` records and wait for every acknowledgement until ``deadline_s``.

        Args:
            records: ``(topic, key, value)`` tuples, sent in this order.
            deadline_s: ``time.monotonic()`` by which every record must be acknowledged; default
                ``produce_timeout_s`` from now. Past it before anything was sent, nothing is sent.
            on_ack: called with a record's index when the broker acknowledged it, from the producer's
                I/O thread, also after this call gave up (a record can still be written then).

        Raises:
            KafkaUnavailable: no broker, or not every record acknowledged by ``deadline_s``. The producer
                is then dropped and the next call builds a new one: a kafka-python 3.0 producer that
                lived through a broker restart kept timing out on every later send although the broker
                was back (found by the chaos suite, docs/reliability.md); what it still held is not
                acknowledged, so its clients resend it (same ids: the dedup drops copies).
        """
        from kafka.errors import KafkaError

        if not records:
            return
        if deadline_s is None:
            deadline_s = time.monotonic() + self.settings.produce_timeout_s
        if time.monotonic() >= deadline_s:
            raise KafkaUnavailable("deadline passed before sending: nothing sent")
        producer = self._get()
        try:
            futures = []
            for index, (topic, key, value) in enumerate(records):
                fut = producer.send(topic, key=key, value=value)
                if on_ack is not None:
                    fut.add_callback(lambda _metadata, index=index: on_ack(index))
                futures.append(fut)
            for fut in futures:
                fut.get(timeout=max(0.001, deadline_s - time.monotonic()))
        except KafkaError as exc:
            self._drop(producer)
            raise KafkaUnavailable(f"not acknowledged: {type(exc).__name__}: {exc}") from None

    def _drop(self, producer) -> None:
        """Forget ``producer`` (if it is still the current one) and close it without waiting."""
        with self._lock:
            if self._producer is not producer:
                return
            self._producer = None
        threading.Thread(target=_close_quietly, args=(producer,), daemon=True, name="collector-producer-close").start()

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def _close_quietly(producer) -> None:
    """Close a kafka-python producer that may hold records it cannot deliver, within about 1 s.

    kafka-python 3.0's ``close`` raises from its ``flush`` when records are still pending at the timeout,
    before it stops its I/O thread; that thread is then stopped here (``force_close``), so a dropped
    producer does not go on retrying in the background.
    """
    from kafka.errors import KafkaError

    try:
        producer.close(timeout=1)
    except KafkaError:
        sender = getattr(producer, "_sender", None)
        if sender is not None and sender.is_alive():
            sender.force_close()
