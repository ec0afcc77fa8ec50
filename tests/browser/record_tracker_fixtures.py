"""Record the payload fixtures of tests/fixtures/trackers/ from the official trackers in Chromium.

    PYTHONPATH=. .venv/bin/python tests/browser/record_tracker_fixtures.py [tracker ...]

Each tracker (web/node_modules, versions of web/package.json) runs on the demo page served by the
real collector (Kafka of the local stack, topics under a throw-away prefix, deleted afterwards) while
the article's visitor (:func:`tracker_support.article_visitor`) acts; every request the tracker sent
is written, as sent, to ``tests/fixtures/trackers/<name>.json``
(``{"tracker", "package", "version", "requests": [{"method", "path", "query", "content_type",
"headers", "body_b64", "status"}]}``). Snowplow is recorded twice: POST (``snowplow.json``) and the
GET pixel (``snowplow_get.json``).
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from support import Browser, ServerThread  # noqa: E402
from tracker_support import BUNDLES, VISITOR_UA, WEB, Recorder, article_visitor, tracker_app  # noqa: E402

from collector.settings import collector_settings  # noqa: E402
from intentflow.services.kafka_broker import create_topics  # noqa: E402
from udfs.config import Topics, stack_settings  # noqa: E402

FIXTURES = HERE.parent / "fixtures" / "trackers"
#: (fixture name, tracker, page query)
RUNS = [("snowplow", "snowplow", ""), ("snowplow_get", "snowplow", "?method=get"), ("segment", "segment", ""),
        ("rrweb", "rrweb", ""), ("posthog", "posthog", "")]
#: After the visitor, how long the trackers get to send what they buffer (posthog-js flushes every 3 s).
SETTLE_MS = 4000


def record(name: str, tracker: str, query: str, bootstrap: str) -> Path:
    prefix = f"rec{uuid.uuid4().hex[:8]}."
    create_topics(bootstrap, prefix=prefix)
    topics = Topics.with_prefix(prefix)
    rec = Recorder()
    with Browser(as_visitor=True, user_agent=VISITOR_UA) as browser:
        srv = ServerThread(lambda: tracker_app(collector_settings(
            kafka_bootstrap=bootstrap, topic_raw=topics.raw, topic_dlq=topics.dlq, rate_limit_per_s=0,
            mount_decision=False, cors_origins=(srv.base_url,)), rec), browser)
        with srv:
            article_visitor(browser, srv.base_url, tracker, query)
            browser.call("sleep", ms=SETTLE_MS)
    time.sleep(0.5)
    package = BUNDLES[tracker].split("/dist")[0]
    version = json.loads((WEB / "node_modules" / package / "package.json").read_text())["version"]
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = FIXTURES / f"{name}.json"
    out.write_text(json.dumps({"tracker": tracker, "package": package, "version": version,
                               "requests": rec.requests}, indent=1) + "\n")
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics(list(topics.all()))
    finally:
        admin.close()
    return out


def main(argv: list[str]) -> None:
    bootstrap = stack_settings().kafka_bootstrap
    for name, tracker, query in RUNS:
        if argv and name not in argv:
            continue
        path = record(name, tracker, query, bootstrap)
        n = len(json.loads(path.read_text())["requests"])
        print(f"{path.relative_to(HERE.parents[1])}: {n} requests")


if __name__ == "__main__":
    main(sys.argv[1:])
