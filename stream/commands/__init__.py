"""Argument wiring of each ``streamrec`` sub-command; the work itself lives in :mod:`stream`.

Each module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed ``argparse.Namespace`` and returning an exit code.
"""
