"""A picture of a ``simulate`` run: each signal's score against its threshold, the hit rate, and
the drift and alarm points over the event index (matplotlib is imported lazily)."""

from __future__ import annotations

import math
from typing import Any


def plot_simulation(monitor: Any, result: dict[str, Any], path: str, title: str = "",
                    baselines: Any = None) -> None:
    """Write a PNG of ``monitor.checks`` (one panel per active signal, then the hit rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checks = list(monitor.checks)
    # a gap (a new reference being captured after a retrain) breaks the lines instead of bridging it
    nan = float("nan")
    step = getattr(monitor, "check_every", 0)
    broken: list[Any] = []
    for c in checks:
        if broken and step and c[0] - broken[-1][0] > 1.5 * step:
            width = len(c[1])
            broken.append((broken[-1][0] + step, (nan,) * width, (nan,) * width, nan))
        broken.append(c)
    checks = broken
    signals = [s for i, s in enumerate(monitor.signals)
               if any(not math.isnan(c[1][i]) for c in checks)]
    rows = len(signals) + 1
    fig, axes = plt.subplots(rows, 1, figsize=(11, 1.9 * rows + 0.6), sharex=True, squeeze=False)
    xs = [c[0] for c in checks]
    drift_at, drift_end = result.get("drift_at"), result.get("drift_end")

    def marks(ax: Any) -> None:
        if drift_at is not None:
            ax.axvline(drift_at, color="black", ls="--", lw=1)
            if drift_end and drift_end > drift_at:
                ax.axvspan(drift_at, drift_end, color="grey", alpha=0.12)
        for e in result.get("retraining_due_events", []):
            ax.axvline(e, color="red", lw=1.2, alpha=0.8)

    for row, s in enumerate(signals):
        i = monitor.signals.index(s)
        ax = axes[row][0]
        ax.plot(xs, [c[1][i] for c in checks], lw=0.8, label="score")
        ax.step(xs, [c[2][i] for c in checks], where="post", color="orange", lw=1, label="threshold")
        det = result.get("detections", {}).get(s, [])
        if det:
            at = {c[0]: c[1][i] for c in checks}
            ax.scatter(det, [at.get(d, 0.0) for d in det], color="red", zorder=3, s=14, label="detected")
        ax.set_ylabel(s, fontsize=8)
        marks(ax)
        if row == 0:
            ax.legend(loc="upper left", fontsize=7, ncol=3)
    ax = axes[-1][0]
    ax.plot(xs, [c[3] for c in checks], lw=0.8, color="green", label="hit rate@20 (window)")
    if baselines is not None:
        for name, color in (("adwin", "purple"), ("evidently", "brown")):
            idx = baselines.detections.get(name, [])
            if idx:
                ax.scatter(idx, [0.02] * len(idx) if name == "adwin" else [0.06] * len(idx), marker="|",
                           color=color, s=40, label=f"{name} alarms")
    ax.set_ylabel("hit rate", fontsize=8)
    ax.set_xlabel("event index (red: retraining due; dashed: drift start)")
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    marks(ax)
    fig.suptitle(title or "streamrec simulate", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_policies(result: dict[str, Any], path: str, title: str = "", drift_at: int | None = None) -> None:
    """Write a PNG of each policy's windowed HR (``simulate --compare-policies``), with the drift
    start, each policy's detections (retraining due) and promotions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.2))
    colours = {"alert": "tab:grey", "retrain": "tab:orange", "challenger": "tab:blue"}
    for name, row in result["policies"].items():
        w = row["windowed"]
        c = colours.get(name)
        ax.plot(w["events"], w["hit_rate"], lw=1.2, color=c, label=f"{name} (post-drift HR@20 "
                f"{row['post_drift_hit_rate_at_20'] if row['post_drift_hit_rate_at_20'] is not None else '-'})")
        for e in row["due_events"]:
            ax.axvline(e, color=c, lw=0.8, ls=":", alpha=0.8)
        for e in row["promotions"]:
            ax.axvline(e, color=c, lw=1.6, alpha=0.9)
            ax.annotate("promoted", (e, ax.get_ylim()[1]), fontsize=7, color=c, rotation=90, va="top")
    start = drift_at if drift_at is not None else result.get("drift_start")
    if start is not None:
        ax.axvline(start, color="black", ls="--", lw=1, label="drift" if drift_at is not None else "first detection")
    ax.set_xlabel("click")
    ax.set_ylabel("HR@20 (windowed)")
    ax.set_title(title + "  (dotted: retraining due; solid: promotion)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
