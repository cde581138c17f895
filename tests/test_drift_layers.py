"""The modules of monitoring/drift/ depend one way: each imports only from earlier layers.

The order (also in ``monitoring/drift/__init__.py``): what a signal is and how it is calibrated,
then the checks, then the monitor, then what reacts to it, then what exports and wires it. Every
import counts, lazy ones inside functions and ``TYPE_CHECKING`` ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DRIFT = Path(__file__).resolve().parent.parent / "monitoring" / "drift"
PACKAGE = "monitoring.drift"

LAYERS: list[tuple[str, ...]] = [
    ("defaults", "signals", "baselines"),
    ("reference", "calibration"),
    ("detector",),
    ("monitor",),
    ("policy", "challenger"),
    ("lifecycle",),
    ("exporter", "config"),
]
LAYER = {module: i for i, layer in enumerate(LAYERS) for module in layer}
INIT = "__init__"  # the package: imports the monitor, so no layered module may import it


def _modules() -> list[str]:
    return sorted(p.stem for p in DRIFT.glob("*.py") if p.stem != INIT)


def drift_imports(source: str) -> set[str]:
    """The modules of the package ``source`` imports (``__init__`` for the package itself).

    >>> sorted(drift_imports("from monitoring.drift import defaults as D, DriftMonitor\\n"
    ...                      "import monitoring.drift.signals\\n"
    ...                      "def f():\\n    from .monitor import DriftMonitor\\n"))
    ['__init__', 'defaults', 'monitor', 'signals']
    """
    known = set(_modules())
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE:
                    found.add(INIT)
                elif alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.split(".")[2])
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: inside the package
                module = f"{PACKAGE}.{module}" if module else PACKAGE
            if module == PACKAGE:
                for alias in node.names:
                    found.add(alias.name if alias.name in known else INIT)
            elif module.startswith(PACKAGE + "."):
                found.add(module.split(".")[2])
    return found


def test_every_module_has_a_layer() -> None:
    assert set(_modules()) == set(LAYER), "add a new module of monitoring/drift/ to LAYERS (and the docstring)"


@pytest.mark.parametrize("module", _modules())
def test_a_module_imports_only_from_earlier_layers(module: str) -> None:
    imported = drift_imports((DRIFT / f"{module}.py").read_text())
    assert INIT not in imported, f"{module} imports the package monitoring.drift (which imports the monitor)"
    later = sorted(m for m in imported if LAYER.get(m, len(LAYERS)) >= LAYER[module])
    assert not later, f"{module} (layer {LAYER[module]}) imports {later} from its own or a later layer"


def test_the_monitor_raises_retraining_due_and_knows_no_subscriber() -> None:
    """Nothing above the monitor is imported by it, not even lazily (the lifecycle subscribes to it,
    the exporter reads it)."""
    imported = drift_imports((DRIFT / "monitor.py").read_text())
    assert not imported & {"lifecycle", "policy", "challenger", "exporter", "config"}
