"""``streamrec bench --http-load``: the request API under load from a second process (``wrk``).

One run (:func:`run_http_load`) on the embedded broker:

1. produces N synthetic clicks to a fresh topic (one partition by default: the GET requests ask
   for probe sessions that click all through the stream, and a worker reading several partitions
   at different paces may expire a session of a lagging one by another's event time);
2. worker A (its own group) consumes the topic at full speed with no HTTP load: its events/s
   over a window of ``duration`` seconds (``pipeline_events_per_s``, from ``/healthz``'s
   ``events_processed`` at both ends of the window);
3. once A has consumed everything (idle), ``wrk`` requests ``GET /recommendations/<id>`` for
   ``duration`` seconds (``http_idle_*``), then ``POST /recommendations`` (``http_idle_post_*``);
4. worker B (a second group) consumes the same topic from the start; while it does, one ``wrk``
   requests ``GET /recommendations/<id>`` and a second ``POST /recommendations`` for
   ``duration`` seconds (``http_*``: the two summed; p50/p99 the larger of the two), and B's
   events/s over that window is ``pipeline_events_per_s_under_load``.

The idle runs ask as fast as ``wrk``'s connections can (the server's ceiling). Under load the
requests are paced to ``rate`` per second, half GET and half POST (``--http-rate``; 0 asks as
fast as possible there too): a shop's traffic arrives at its own rate, and a load generator
that saturates a core of a two-core machine measures the machine's sharing, not the worker. The
pacing is a schedule per ``wrk`` thread (each request's start slot is the last one's plus the
interval, kept by ``delay()``); latency is timed from when a request is sent, as ``wrk`` does.

Session ids and basket items come from the first clicks of the topic, so every request asks for
a session the worker knows. ``wrk`` is Debian's (``apt-get install wrk``); its Lua ``done`` hook
prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from stream.evaluation.synthetic import SyntheticStream
from stream.events import Event
from stream.kafka.broker import EmbeddedBroker
from stream.kafka.producer import produce_events

#: The keys ``--http-load --json`` adds to bench's own.
JSON_KEYS = (
    "http_idle_requests_per_s", "http_idle_p99_ms", "http_requests_per_s", "http_p50_ms", "http_p99_ms",
    "http_errors", "pipeline_events_per_s_under_load",
)

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, '
    .. '"p99_us": %d, "max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


_PACE = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } streamrec_ts;
int clock_gettime(int clk, streamrec_ts *tp);
]]
local clock = ffi.new("streamrec_ts")
local slot = nil
delay = function()
  ffi.C.clock_gettime(1, clock)
  local now = tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
  if slot == nil or slot < now - 1000 then slot = now end
  slot = slot + INTERVAL_MS
  local d = slot - INTERVAL_MS - now
  if d < 0 then return 0 end
  return d
end
"""


def _pace(rate: float, threads: int) -> str:
    """``wrk``'s ``delay()`` hook for ``rate`` requests/s over ``threads`` threads ("" for none)."""
    if rate <= 0:
        return ""
    return _PACE.replace("INTERVAL_MS", repr(1000.0 * threads / rate))


def _get_script(ids: list[str], pace: str = "") -> str:
    quoted = ",".join(json.dumps(f"/recommendations/{s}?k=10") for s in ids)
    return ("local paths = {" + quoted + "}\nlocal n = 0\n"
            "request = function()\n  n = n % #paths + 1\n  return wrk.format('GET', paths[n])\nend\n" + pace
            + _DONE)


def _post_script(baskets: list[list[str]], pace: str = "") -> str:
    bodies = ",".join(json.dumps(json.dumps({"items": b, "k": 10})) for b in baskets)
    return ("local bodies = {" + bodies + "}\nlocal n = 0\n"
            "request = function()\n  n = n % #bodies + 1\n"
            "  return wrk.format('POST', '/recommendations', {['Content-Type'] = 'application/json'}, bodies[n])\n"
            "end\n" + pace + _DONE)


@dataclass
class WrkRun:
    """One ``wrk`` run's figures, from its ``done`` hook's JSON line (:meth:`parse`)."""

    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int  # socket errors, timeouts and non-2xx answers
    error_kinds: dict[str, int]

    @staticmethod
    def parse(out: str) -> WrkRun:
        line = next((ln for ln in out.splitlines() if ln.startswith("WRK ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary:\n{out[-2000:]}")
        d = json.loads(line[4:])
        errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
        return WrkRun(
            requests_per_s=round(d["requests"] / (d["duration_us"] / 1e6), 1),
            p50_ms=round(d["p50_us"] / 1e3, 3), p90_ms=round(d["p90_us"] / 1e3, 3),
            p99_ms=round(d["p99_us"] / 1e3, 3), max_ms=round(d["max_us"] / 1e3, 3),
            requests=d["requests"], errors=errors,
            error_kinds={k: d[k] for k in ("connect", "read", "write", "status", "timeout") if d[k]},
        )


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("error: wrk is not installed (Debian: apt-get install wrk)")
    return path


def start_wrk(port: int, script: str, tmp: str, name: str, duration_s: float, threads: int,
              connections: int) -> subprocess.Popen[str]:
    path = os.path.join(tmp, f"{name}.lua")
    with open(path, "w") as f:
        f.write(script)
    cmd = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
           "-s", path, f"http://127.0.0.1:{port}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_wrk(p: subprocess.Popen[str]) -> WrkRun:
    out, _ = p.communicate(timeout=600)
    return WrkRun.parse(out)


@dataclass
class HttpLoadResult:
    model: str
    events: int
    duration_s: float
    connections: int
    pipeline_events_per_s: float
    pipeline_events_per_s_under_load: float
    idle_get: WrkRun
    idle_post: WrkRun
    load_get: WrkRun
    load_post: WrkRun
    rate: float = 0.0  # requests/s asked of the consuming worker (0: as fast as wrk can)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        lg, lp = self.load_get, self.load_post
        return {
            "http_idle_requests_per_s": self.idle_get.requests_per_s,
            "http_idle_p99_ms": self.idle_get.p99_ms,
            "http_idle_post_requests_per_s": self.idle_post.requests_per_s,
            "http_idle_post_p99_ms": self.idle_post.p99_ms,
            "http_requests_per_s": round(lg.requests_per_s + lp.requests_per_s, 1),
            "http_p50_ms": max(lg.p50_ms, lp.p50_ms),
            "http_p99_ms": max(lg.p99_ms, lp.p99_ms),
            "http_errors": self.idle_get.errors + self.idle_post.errors + lg.errors + lp.errors,
            "http_get_requests_per_s": lg.requests_per_s, "http_get_p99_ms": lg.p99_ms,
            "http_post_requests_per_s": lp.requests_per_s, "http_post_p99_ms": lp.p99_ms,
            "pipeline_events_per_s": self.pipeline_events_per_s,
            "pipeline_events_per_s_under_load": self.pipeline_events_per_s_under_load,
            "pipeline_kept_under_load": round(self.pipeline_events_per_s_under_load / self.pipeline_events_per_s, 3)
            if self.pipeline_events_per_s else None,
        }

    def table(self) -> str:
        rows = [("idle, GET", self.idle_get), ("idle, POST", self.idle_post),
                ("consuming, GET", self.load_get), ("consuming, POST", self.load_post)]
        paced = f"paced at {self.rate:,.0f} req/s" if self.rate > 0 else "unpaced"
        out = [f"HTTP load: {self.model}, {self.events:,} clicks, wrk {self.duration_s:.0f} s per run; "
               f"idle: as fast as wrk can, consuming: {paced} (half GET, half POST)",
               f"{'':18} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}"]
        for name, r in rows:
            out.append(f"{name:18} {r.requests_per_s:>9,.0f} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} "
                       f"{r.p99_ms:>8.2f} {r.errors:>7}")
        kept = self.as_json()["pipeline_kept_under_load"]
        out.append(f"worker events/s: {self.pipeline_events_per_s:,.0f} unloaded, "
                   f"{self.pipeline_events_per_s_under_load:,.0f} under load"
                   + (f" ({kept:.0%})" if kept is not None else ""))
        out.extend(self.notes)
        for name, r in rows:
            if r.error_kinds:
                out.append(f"{name} errors: {r.error_kinds}")
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wait(pred: Any, timeout_s: float, what: str, poll_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(poll_s)
    raise RuntimeError(f"timed out waiting for {what}")


def _processed(w: Any) -> int | None:
    h = w.health()
    return None if h is None else int(h["events_processed"])


#: Seconds per wrk run and wrk connections for GET (``--http-duration``, ``--http-connections``).
DEFAULT_DURATION_S = 8.0
DEFAULT_CONNECTIONS = 16
#: Requests/s against the consuming worker, half GET and half POST (``--http-rate``; 0: unpaced).
DEFAULT_RATE = 1000.0
#: Sessions the GET requests ask for: they click all through the stream, so they stay live.
PROBE = "probe-"
PROBES = 200
PROBE_EVERY = 25
#: Both workers' events/s are measured from this many events on (the same stretch of the stream).
WARM_EVENTS = 30_000


def with_probes(events: list[Event]) -> list[Event]:
    """``events`` with a click of one of the :data:`PROBES` probe sessions after every
    :data:`PROBE_EVERY` th (same item and time as that click), so each probe session clicks
    every ``PROBES * PROBE_EVERY`` events and outlives the session timeout.

    >>> evs = with_probes([Event("s", "i", float(t)) for t in range(50)])
    >>> len(evs), evs[25].session_id, evs[25].item_id
    (52, 'probe-0', 'i')
    """
    out: list[Event] = []
    j = 0
    for t, e in enumerate(events):
        out.append(e)
        if t % PROBE_EVERY == PROBE_EVERY - 1:
            out.append(Event(f"{PROBE}{j % PROBES}", e.item_id, e.timestamp))
            j += 1
    return out


def run_http_load(events: int = 300_000, model: str = "vstan", duration_s: float = DEFAULT_DURATION_S,
                  threads: int = 2, connections: int = DEFAULT_CONNECTIONS, post_connections: int = 4,
                  partitions: int = 1, seed: int = 0, rate: float = DEFAULT_RATE,
                  worker_args: list[str] | None = None, bootstrap: str | None = None) -> HttpLoadResult:
    from stream.evaluation.bench import _start_worker, _stop

    wrk_binary()
    stream = with_probes(list(SyntheticStream(events=events, seed=seed)))
    ids = [f"{PROBE}{j}" for j in range(PROBES)]
    first: dict[str, list[str]] = {}
    for e in stream[:5_000]:
        first.setdefault(e.session_id, []).append(e.item_id)
    baskets = [v[:3] for v in first.values()][:200]
    args = list(worker_args or [])
    notes: list[str] = []
    events = len(stream)
    with tempfile.TemporaryDirectory(prefix="streamrec-httpload-") as tmp, \
            (EmbeddedBroker() if bootstrap is None else _Given(bootstrap)) as broker:
        client = {"bootstrap_servers": broker.bootstrap}
        topic = f"httpload-{os.getpid()}-{int(time.time())}"
        produce_events(client, topic, stream, partitions=partitions, show_progress=False)

        def measure_rate(w: Any, window_s: float) -> float:
            _wait(lambda: (_processed(w) or 0) >= WARM_EVENTS, 300, "the worker's first events")
            n0, t0 = _processed(w) or 0, time.monotonic()
            time.sleep(window_s)
            n1, t1 = _processed(w) or 0, time.monotonic()
            if n1 >= events:
                notes.append("note: the worker finished the topic inside the window; use more --events")
            return round((n1 - n0) / (t1 - t0), 1)

        a = _start_worker(broker.bootstrap, topic, f"{topic}-a", model, args, tmp, 0, False, None, None)
        try:
            unloaded = measure_rate(a, duration_s)
            _wait(lambda: (_processed(a) or 0) >= events, 1200, "worker A to consume the topic", 0.2)
            idle_get = finish_wrk(start_wrk(a.port, _get_script(ids), tmp, "idle-get", duration_s, threads,
                                            connections))
            idle_post = finish_wrk(start_wrk(a.port, _post_script(baskets), tmp, "idle-post", duration_s,
                                             threads, connections))
        finally:
            _stop([a])
        b = _start_worker(broker.bootstrap, topic, f"{topic}-b", model, args, tmp, 1, False, None, None)
        try:
            _wait(lambda: (_processed(b) or 0) >= WARM_EVENTS - 5_000, 300, "worker B's first polls")
            get_threads = max(1, threads // 2)
            get = start_wrk(b.port, _get_script(ids, _pace(rate / 2, get_threads)), tmp, "load-get", duration_s,
                            get_threads, connections)
            post = start_wrk(b.port, _post_script(baskets, _pace(rate / 2, 1)), tmp, "load-post", duration_s, 1,
                             post_connections)
            loaded = measure_rate(b, duration_s)
            load_get, load_post = finish_wrk(get), finish_wrk(post)
        finally:
            _stop([b])
    return HttpLoadResult(model, events, duration_s, connections, unloaded, loaded, idle_get, idle_post,
                          load_get, load_post, rate, notes)


class _Given:
    """A broker someone else runs (``--bootstrap-servers``)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def __enter__(self) -> _Given:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
