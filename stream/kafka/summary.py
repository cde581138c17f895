"""What ``streamrec worker --summary-json`` writes at exit (``bench`` and tests read it), and the
process memory figures it reports."""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

import numpy as np
import orjson


def vm_kb(field_name: str, pid: int | str = "self") -> int | None:
    """A ``/proc/<pid>/status`` field in kB (``VmRSS``, ``VmHWM``), ``None`` if unavailable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM; ru_maxrss where /proc is absent)."""
    kb = vm_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024.0, 1)


def write_worker_summary(worker: Any, summary: Any, path: str) -> None:
    """What ``streamrec worker --summary-json`` writes at exit (and bench reads)."""
    p = worker.processor
    lat = p.latency.samples()
    np.save(path + ".latency.npy", lat.astype(np.float32))
    replica = worker.replica
    out = {
        "events_processed": summary.events_processed,
        "events_invalid": summary.events_invalid,
        "recommendations_published": summary.recommendations_published,
        "predictions": p.preq.predictions,
        "hits": p.preq.hits,
        "rr_sum": p.preq.rr_sum,
        "first_batch_at": worker.first_batch_at,
        "last_batch_at": worker.last_batch_at,
        "elapsed_s": summary.elapsed_s,
        "recommend_ms_p50": round(float(np.percentile(lat, 50)) * 1e3, 4) if len(lat) else 0.0,
        "recommend_ms_p99": round(float(np.percentile(lat, 99)) * 1e3, 4) if len(lat) else 0.0,
        "peak_rss_mb": peak_rss_mb(),
        "live_sessions": len(p.sessions),
        "items": len(p.items),
        "foreign_learned": replica.learned if replica is not None else 0,
        "shadow_sessions": len(replica.shadow) if replica is not None else 0,
        "pid": os.getpid(),
    }
    life = worker.lifecycle
    if life is not None:  # the challenger's share of the run (bench: its cost)
        st = life.status()
        out["lifecycle"] = {"state": st["state"], "challenger_clicks": st["challenger"]["clicks"],
                            "promotions": [pr["event"] for pr in st["promotions"]], "dropped": st["dropped"]}
    tmp = path + ".tmp"
    Path(tmp).write_bytes(orjson.dumps(out))
    os.replace(tmp, path)
