"""Pure helpers of ``intentflow.services`` (no service started)."""
from __future__ import annotations

import base64
import uuid
from unittest import mock

from intentflow.services.kafka_broker import kafka_cluster_id


def test_kafka_cluster_id_is_22_urlsafe_characters_of_16_bytes():
    cid = kafka_cluster_id()
    assert len(cid) == 22
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_kafka_cluster_id_never_starts_with_a_dash():
    # 0xf8.. encodes to "-" first in URL-safe base64; the first draw is such an id, the second is not.
    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    plain = uuid.UUID(bytes=bytes([0x10]) + bytes(15))
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    with mock.patch("intentflow.services.kafka_broker.uuid.uuid4", side_effect=[dash_first, plain]) as draw:
        cid = kafka_cluster_id()
    assert not cid.startswith("-")
    assert draw.call_count == 2
