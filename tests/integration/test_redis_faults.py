"""Redis outages are waited out and Redis AUTH reaches every client (issue 14, case 4 and item 6).

Each test runs its own redis-server (intentflow/services/own_redis.py) with ``requirepass`` (and an ACL user), never
the shared one, so it can stop it:

- the action writer (``connectors.redis_store``) blocks through an outage and writes everything after
  it; wrong credentials are an error at once, not an endless retry;
- the decision API reads with the password or an ACL user from the environment, and answers the safe
  default (never a 5xx) while Redis is down or refuses it;
- the live job (Flink mini-cluster) writes to a password-protected Redis, survives it being stopped
  (before: "Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy" about 8 s later, job dead)
  and, once it is back, counts every event, with no person acting.
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from collector.decision import decision_settings, register
from connectors.redis_store import RedisActionWriter
from intentflow.services.own_redis import OwnRedis
from udfs.config import stack_settings

pytestmark = pytest.mark.integration

PASSWORD = "p@ss:w/rd " + uuid.uuid4().hex[:8]  # characters a URL must escape
ACL_USER = ("intentflow-job", "acl-" + uuid.uuid4().hex[:8])
#: Only turns a hang into a failure; no durations are asserted.
HANG_GUARD_S = 120


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path, password=PASSWORD, acl_user=ACL_USER)
    server.start()
    yield server
    server.stop()


def _action(session_id: str, n: int) -> dict:
    return {"session_id": session_id, "event_id": f"{session_id}-e{n}", "event_ts_ms": 1_000 + n,
            "action": "show_offer", "rule_id": "r1", "rule_version": 1, "params": {"pct": 10}}


def _writer(url: str) -> RedisActionWriter:
    return RedisActionWriter(url, "t:", action_ttl_s=600, session_ttl_s=600, stream_maxlen=1000)


def test_writer_waits_out_an_outage_then_writes_everything(own_redis):
    writer = _writer(own_redis.url())
    writer.write([_action("s1", 1)], {"s1": {"applied": 1}}, {}, {})
    failures = []
    outage_seen = threading.Event()
    real_sleep = writer.sleep

    def counting_sleep(delay_s: float) -> None:  # the writer's backoff: count the failed attempts
        failures.append(delay_s)
        if len(failures) >= 3:
            outage_seen.set()
        real_sleep(delay_s)

    writer.sleep = counting_sleep
    own_redis.stop()
    errors: list[BaseException] = []

    def write_during_outage() -> None:
        try:
            writer.write([_action("s2", 2)], {"s2": {"applied": 2}}, {("c1", 0, "click"): {"s2"}}, {"events": 1})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=write_during_outage)
    thread.start()
    assert outage_seen.wait(HANG_GUARD_S), "the writer did not retry while Redis was down"
    assert thread.is_alive()  # still waiting, not failed
    own_redis.start()  # same port, same password; its data is gone (no persistence)
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive() and errors == []
    assert failures == sorted(failures) and failures[1] == 2 * failures[0]  # exponential backoff
    client = redis.Redis.from_url(own_redis.url(), decode_responses=True)
    assert client.hget("t:action:s2", "action") == "show_offer"
    assert client.hget("t:session:s2", "applied") == "2"
    assert client.smembers("t:agg:c1:0:click") == {"s2"}
    assert client.hget("t:stats", "events") == "1"
    writer.close()
    client.close()


@pytest.mark.parametrize("url_of", [
    lambda r: r.url(password="wrong"),
    lambda r: r.url(user=ACL_USER[0], password="wrong"),
    lambda r: f"redis://127.0.0.1:{r.port}/0",  # no credentials at all (NOAUTH)
], ids=["wrong-password", "wrong-acl-password", "none"])
def test_writer_refuses_wrong_credentials_at_once(own_redis, url_of):
    writer = _writer(url_of(own_redis))
    writer.sleep = lambda _s: pytest.fail("wrong credentials must not be retried as an outage")
    with pytest.raises(redis.AuthenticationError):
        writer.write([_action("s1", 1)], {}, {}, {})
    writer.close()


async def _decision(env: dict[str, str], session_id: str):
    app = web.Application()
    register(app, decision_settings(env))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.get("/v1/decision", params={"session_id": session_id})
        return resp.status, await resp.json()
    finally:
        await client.close()


@pytest.mark.parametrize("auth", ["requirepass", "acl-user"])
async def test_decision_api_reads_with_credentials_from_the_environment(own_redis, auth):
    env = {"INTENTFLOW_REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0", "INTENTFLOW_REDIS_PREFIX": "t:"}
    if auth == "requirepass":
        env["INTENTFLOW_REDIS_PASSWORD"] = PASSWORD
    else:
        env["INTENTFLOW_REDIS_USERNAME"], env["INTENTFLOW_REDIS_PASSWORD"] = ACL_USER
    writer = _writer(stack_settings(env).redis_url)  # the job's writer, from the same environment
    writer.write([_action("s9", 1)], {}, {}, {})
    writer.close()

    status, body = await _decision(env, "s9")
    assert status == 200 and (body["source"], body["action"], body["params"]) == ("redis", "show_offer", {"pct": 10})
    # wrong password, then Redis down: the safe default, never a 5xx
    status, body = await _decision({**env, "INTENTFLOW_REDIS_PASSWORD": "wrong"}, "s9")
    assert status == 200 and body["source"] == "redis_unavailable"
    own_redis.stop()
    status, body = await _decision(env, "s9")
    assert status == 200 and body["source"] == "redis_unavailable"


@pytest.mark.flink
def test_live_job_with_redis_auth_rides_out_a_redis_outage(stack, topics, own_redis):
    from tests.job_support import LiveJob, produce, session_counts, wait_for
    from udfs.contract import make_event

    prefix = f"t{uuid.uuid4().hex[:8]}:"
    env = {"INTENTFLOW_REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0",
           "INTENTFLOW_REDIS_USERNAME": ACL_USER[0], "INTENTFLOW_REDIS_PASSWORD": ACL_USER[1]}
    client = redis.Redis.from_url(own_redis.url(), decode_responses=True)
    now_ms = int(time.time() * 1000)

    def clicks(session_id: str, first: int, n: int) -> list[dict]:
        return [make_event("click", session_id=session_id, client_ts_ms=now_ms + 1000 * i, source_key=f"{session_id}-{i}",
                           props={"element_id": f"el{i}", "element_role": "product_card"})
                for i in range(first, first + n)]

    with LiveJob(topics, prefix, "--window-ms", "20", env=env) as job:
        produce(stack.kafka_bootstrap, topics.raw, clicks("before", 0, 5))
        wait_for(lambda: session_counts(client, prefix).get("before", {}).get("applied") == 5, HANG_GUARD_S,
                 "the job to write through the password-protected Redis", job)
        own_redis.stop()
        produce(stack.kafka_bootstrap, topics.raw, clicks("before", 5, 5) + clicks("during", 0, 7))
        time.sleep(20)  # the outage of the report (the fault's length, not an assertion)
        assert job.alive(), f"the job died during the Redis outage:\n{job.log_tail()}"
        own_redis.start()  # empty: the job rewrites what it holds in its state
        client = redis.Redis.from_url(own_redis.url(), decode_responses=True)
        produce(stack.kafka_bootstrap, topics.raw, clicks("after", 0, 3))

        def settled():
            counts = session_counts(client, prefix)
            return {s: c["applied"] for s, c in counts.items()} == {"before": 10, "during": 7, "after": 3}

        wait_for(settled, HANG_GUARD_S, "every event counted after Redis came back", job)
        assert job.alive()
    client.close()


def test_live_job_writes_its_sessions_again_when_redis_comes_back_empty(stack, topics, own_redis):
    """Redis loses its data while the job runs (FLUSHALL stands for a restart without persistence): the
    job notices it at its next write and writes the summary and latest action of every session it holds
    again, also of sessions that send nothing more (issue 14, item 1)."""
    from tests.job_support import LiveJob, produce, session_counts, wait_for
    from udfs.scenarios import article_session, shallow_session

    prefix = f"t{uuid.uuid4().hex[:8]}:"
    env = {"INTENTFLOW_REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0",
           "INTENTFLOW_REDIS_USERNAME": ACL_USER[0], "INTENTFLOW_REDIS_PASSWORD": ACL_USER[1]}
    client = redis.Redis.from_url(own_redis.url(), decode_responses=True)
    now_ms = int(time.time() * 1000)
    quiet = article_session("quiet-after", now_ms, key="quiet-after")
    later = shallow_session("arrives-later", now_ms + 1_000, key="arrives-later")
    with LiveJob(topics, prefix, "--window-ms", "20", env=env) as job:
        produce(stack.kafka_bootstrap, topics.raw, quiet)
        wait_for(lambda: session_counts(client, prefix).get("quiet-after", {}).get("applied") == len(quiet)
                 and client.hgetall(f"{prefix}action:quiet-after"), HANG_GUARD_S,
                 "the job to write the first session and its action", job)
        before = client.hgetall(f"{prefix}action:quiet-after")
        client.flushall()
        assert not client.exists(f"{prefix}session:quiet-after")
        produce(stack.kafka_bootstrap, topics.raw, later)  # the next write finds Redis empty
        wait_for(lambda: client.exists(f"{prefix}session:quiet-after") and client.exists(f"{prefix}action:quiet-after"),
                 HANG_GUARD_S, "the quiet session's keys written again", job)
        assert session_counts(client, prefix)["quiet-after"]["applied"] == len(quiet)
        assert client.hgetall(f"{prefix}action:quiet-after") == before
        assert job.alive()
    client.close()
