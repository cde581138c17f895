"""Kafka clients as streamrec creates them: one place for connection, security and timeouts.

Every client (producer, consumer, admin) is built from :func:`client_config`, so TLS/SASL
settings given by flag or ``STREAMREC_*`` variable reach all of them. Secrets are never logged:
:func:`redacted` is what goes into log lines.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream import config
from stream.kafka import redact

log = logging.getLogger("streamrec.kafka")

DEFAULT_BOOTSTRAP = "localhost:9092"
#: The click topic, and its partitions when a command creates it (``--topic``, ``--partitions``).
DEFAULT_TOPIC = "clicks"
DEFAULT_PARTITIONS = 4

#: Consumer timeouts that behave on both Apache Kafka and Tansu: Tansu holds
#: joins for half the session timeout, and 0.8 x session must stay under the request timeout.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 1_000,
    "max_poll_interval_ms": 60_000,
    "request_timeout_ms": 30_000,
    "max_poll_records": 5_000,
    "fetch_max_bytes": 16 * 1024 * 1024,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "allow_auto_create_topics": False,
}

PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger_ms": 10,
    "batch_size": 256 * 1024,
}

_SECRET_KEYS = ("sasl_plain_password", "ssl_password")


def add_kafka_args(parser: argparse.ArgumentParser, bootstrap_required: bool = True) -> None:
    """``--bootstrap-servers`` and the security flags, each with its STREAMREC_* fallback."""
    config.add(parser, "--bootstrap-servers", default=None if not bootstrap_required else DEFAULT_BOOTSTRAP,
               help="Kafka bootstrap servers, host:port[,host:port]")
    g = parser.add_argument_group("Kafka security (passed to every client)")
    config.add(g, "--security-protocol", default="PLAINTEXT",
               choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], help="security protocol")
    config.add(g, "--sasl-mechanism", default=None,
               choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"],
               help="SASL mechanism")
    config.add(g, "--sasl-username", default=None, help="SASL username")
    config.add(g, "--sasl-password", default=None, help="SASL password (prefer the env variable)")
    config.add(g, "--ssl-cafile", default=None, help="CA bundle to verify the brokers")
    config.add(g, "--ssl-certfile", default=None, help="client certificate (PEM)")
    config.add(g, "--ssl-keyfile", default=None, help="client private key (PEM)")


def client_config(args: argparse.Namespace | dict[str, Any]) -> dict[str, Any]:
    """kafka-python keyword arguments shared by every client."""
    a = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    cfg: dict[str, Any] = {"bootstrap_servers": a.get("bootstrap_servers") or DEFAULT_BOOTSTRAP}
    proto = a.get("security_protocol") or "PLAINTEXT"
    cfg["security_protocol"] = proto
    if proto.startswith("SASL"):
        cfg["sasl_mechanism"] = a.get("sasl_mechanism") or "PLAIN"
        if a.get("sasl_username") is not None:
            cfg["sasl_plain_username"] = a["sasl_username"]
        if a.get("sasl_password") is not None:
            cfg["sasl_plain_password"] = a["sasl_password"]
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if a.get(key):
            cfg[key] = a[key]
    redact.register(*(cfg.get(k) for k in _SECRET_KEYS))  # kafka-python logs its config at DEBUG
    return cfg


def redacted(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with secrets masked, for logs.

    >>> redacted({"bootstrap_servers": "b:9092", "sasl_plain_password": "hunter2"})
    {'bootstrap_servers': 'b:9092', 'sasl_plain_password': '***'}
    """
    return {k: ("***" if k in _SECRET_KEYS and v is not None else v) for k, v in cfg.items()}


_DEFAULTS: dict[str, dict[str, Any]] = {"producer": PRODUCER_DEFAULTS, "consumer": CONSUMER_DEFAULTS, "admin": {}}


def client_kwargs(kind: str, cfg: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The keyword arguments every kafka-python client of ``kind`` (producer, consumer, admin) gets:
    the shared connection and security settings, that kind's defaults, then ``overrides``.

    >>> kw = client_kwargs("consumer", {"bootstrap_servers": "b:9092", "security_protocol": "SSL"}, group_id="g")
    >>> kw["security_protocol"], kw["group_id"], kw["enable_auto_commit"]
    ('SSL', 'g', False)
    """
    return {**cfg, **_DEFAULTS[kind], **overrides}


def make_producer(cfg: dict[str, Any], **overrides: Any) -> KafkaProducer:
    return KafkaProducer(**client_kwargs("producer", cfg, **overrides))


def make_consumer(cfg: dict[str, Any], **overrides: Any) -> KafkaConsumer:
    return KafkaConsumer(**client_kwargs("consumer", cfg, **overrides))


def ensure_topic(cfg: dict[str, Any], topic: str, partitions: int = 1, timeout_s: float = 30.0,
                 configs: dict[str, str] | None = None) -> bool:
    """Create ``topic`` with ``partitions`` unless it exists; True if it was created.

    Topics are created explicitly because auto-creation picks the broker's partition count.
    ``configs`` (e.g. ``{"cleanup.policy": "compact"}``) are asked for at creation; a broker that
    refuses them gets the topic without them, and a warning says so.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(**client_kwargs("admin", cfg))
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for the broker at %s: %s", cfg.get("bootstrap_servers"), exc)
            time.sleep(1.0)
    try:
        if topic in admin.list_topics():
            return False
        if configs:
            try:
                admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
                log.info("created topic %s with %d partition(s), %s", topic, partitions,
                         ", ".join(f"{k}={v}" for k, v in configs.items()))
                return True
            except TopicAlreadyExistsError:
                raise
            except KafkaError as exc:
                log.warning("the broker refused topic %s with %s (%s): creating it without", topic,
                            configs, exc)
        admin.create_topics([NewTopic(topic, partitions, 1)])
        log.info("created topic %s with %d partition(s)", topic, partitions)
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()
