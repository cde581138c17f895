"""``streamrec admin``: call a worker's operator actions (:mod:`stream.serving.admin`) and print the status."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

from stream import config
from stream.cli.common import add_command
from stream.serving.admin import DEFAULT_ADMIN_PORT

ACTIONS = ("status", "retrain", "promote", "acknowledge")
#: Who acts when ``--by`` names no one, and seconds to wait for the worker's answer.
DEFAULT_BY = "operator"
REQUEST_TIMEOUT_S = 30.0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "admin", help="operator actions on a running worker: status, retrain, promote, acknowledge",
        func=run,
        description="Calls a worker's admin routes (the worker needs --admin-token) and prints the "
                    "lifecycle's status as JSON. status: state, retraining due and why, the challenger, "
                    "promotions, acknowledgements, the last actions. retrain: build a challenger now. "
                    "promote: promote the waiting challenger (--promote manual). acknowledge: accept "
                    "the drift as the new normal (clears retraining due; the reference is re-baselined). "
                    "Exit status 0 on success, 1 when the worker refuses (e.g. nothing to promote), "
                    "2 when it cannot be reached or the token is wrong.")
    p.add_argument("action", choices=ACTIONS, help="what to do")
    config.add(p, "--url", default=f"http://127.0.0.1:{DEFAULT_ADMIN_PORT}",
               help="the worker's admin listener (its --admin-host and --admin-port)", env="STREAMREC_ADMIN_URL")
    config.add(p, "--token", default=None,
               help="bearer token (the worker's --admin-token); prefer the environment variable",
               env="STREAMREC_ADMIN_TOKEN")
    p.add_argument("--reason", default="", help="why (logged with the action; retrain, acknowledge)")
    config.add(p, "--by", default=DEFAULT_BY, help="who acts (logged with the action)", env="STREAMREC_ADMIN_BY")
    p.add_argument("--timeout", default=REQUEST_TIMEOUT_S, type=float,
                   help=f"seconds to wait for the worker's answer (default: {REQUEST_TIMEOUT_S:g})")


def request(url: str, action: str, token: str, reason: str = "", by: str = DEFAULT_BY,
            timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, dict]:
    """(HTTP status, JSON body) of one admin call; ``OSError`` if the worker cannot be reached."""
    body = None
    if action != "status":
        fields = {"by": by}
        if reason and action != "promote":
            fields["reason"] = reason
        body = json.dumps(fields).encode()
    req = urllib.request.Request(f"{url.rstrip('/')}/admin/{action}", data=body,
                                 method="GET" if body is None else "POST")
    req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            out = json.loads(e.read() or b"{}")
        except ValueError:
            out = {"error": e.reason}
        return e.code, out


def run(args: argparse.Namespace) -> int:
    if not args.token:
        print("error: no admin token: pass --token or set STREAMREC_ADMIN_TOKEN", file=sys.stderr)
        return 2
    try:
        code, out = request(args.url, args.action, args.token, args.reason, args.by, args.timeout)
    except (OSError, ValueError) as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2
    if code == 200:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    print(f"error: HTTP {code}: {out.get('error', out)} (field: {out.get('field', '-')})", file=sys.stderr)
    return 2 if code in (401, 404, 503) else 1
