"""Keep secrets out of every log line, including third-party libraries' (kafka-python logs its
whole configuration at DEBUG).

:func:`register` adds secret values; from then on every log record created in the process has
them replaced by ``***`` in its rendered message, whatever logger or handler emits it.

Examples
--------
>>> import logging
>>> register("hunter2")
>>> rec = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "cfg %s", ({"pw": "hunter2"},), None)
>>> rec.getMessage()
"cfg {'pw': '***'}"
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False
MASK = "***"


def scrub(text: str) -> str:
    """``text`` with every registered secret masked."""
    for s in _secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


def register(*secrets: str | None) -> None:
    """Mask these values (``None`` and values shorter than 4 characters are ignored)."""
    global _installed
    new = {s for s in secrets if s and len(s) >= 4}
    if not new:
        return
    with _lock:
        _secrets.update(new)
        if _installed:
            return
        base = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            try:
                msg = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken format is the logging module's to report
                return record
            clean = scrub(msg)
            if clean != msg or record.args:
                record.msg, record.args = clean, ()
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
