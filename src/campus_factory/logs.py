"""Structured logging: text or JSON lines, one line per decision, never a secret.

:func:`configure_logging` installs one stderr handler on the root logger whose
:class:`RedactingFormatter` formats a redacted copy of every record (records of every logger pass
through it; the record itself is left unchanged for other handlers) with either the plain text
format or :class:`JsonFormatter` (one JSON object per line; ``extra=`` fields become keys).
:func:`log_plan` writes one line per site decision and per job-group decision.

The :class:`Redactor` masks, in the message, its arguments and string extras: bearer tokens, ``token=``/
``password=``-style pairs (also as JSON keys), JWTs (HTCondor IDTOKENs are JWTs), passwords in
URLs (``postgresql://user:secret@host``), PEM private keys, and any literal secret it is given
(e.g. the API token read at startup). In the text format a message is one line: line breaks,
control characters and lone surrogates in it are escaped (:func:`campus_factory.domain.printable`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any, Literal

from .domain import printable

__all__ = [
    "MASK",
    "JsonFormatter",
    "RedactingFormatter",
    "Redactor",
    "configure_logging",
    "log_cycle",
    "log_plan",
    "redact",
]

MASK = "***"
_KEYS = r"(?:api[_-]?key|api[_-]?token|access[_-]?key|secret[_-]?key|private[_-]?key|token|password|passwd|secret)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S), MASK),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), rf"\1{MASK}@"),
    (re.compile(rf"(?i)(\b{_KEYS}\b[\"']?\s*[:=]\s*[\"']?)(?!{re.escape(MASK)})[^\s\"',;&}})]+"), rf"\1{MASK}"),
)
# attributes every LogRecord has; anything else came from ``extra=`` (uvicorn's color_message: ANSI)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Redactor:
    """Masks secrets in a *copy* of a record: its message, arguments, string ``extra`` fields and
    exception text. The record itself is left alone, so other handlers see it unchanged."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def add_secret(self, secret: str) -> None:
        if secret and len(secret) >= 4 and secret not in self.secrets:
            self.secrets.append(secret)

    def redacted(self, record: logging.LogRecord) -> logging.LogRecord:
        copy = logging.makeLogRecord(dict(record.__dict__))
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        copy.msg, copy.args = redact(message, self.secrets), None
        for key, value in record.__dict__.items():
            if key in _STANDARD:
                continue
            if isinstance(value, str):
                setattr(copy, key, redact(value, self.secrets))
            elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                setattr(copy, key, [redact(v, self.secrets) for v in value])
        if record.exc_info and record.exc_info[1] is not None:
            copy.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
        elif record.exc_text:
            copy.exc_text = redact(record.exc_text, self.secrets)
        copy.exc_info = None
        return copy


class RedactingFormatter(logging.Formatter):
    """Formats a redacted copy of each record with ``inner`` (text or :class:`JsonFormatter`)."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        copy = self.redactor.redacted(record)
        if not isinstance(self.inner, JsonFormatter):  # JSON escapes on its own
            # one record, one line: a group id or owner holding a line break or a terminal escape
            # is shown escaped, never forging a line or driving the reader's terminal
            copy.msg = printable(str(copy.msg))
        return self.inner.format(copy)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601 UTC), level, logger, msg, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        out: dict[str, Any] = {
            "ts": ts,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str, sort_keys=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    fmt: Literal["text", "json"] = "text",
    *,
    level: int = logging.INFO,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> Redactor:
    """Replace the root logger's handlers with one redacting handler; returns its redactor."""
    handler = logging.StreamHandler(stream or sys.stderr)
    redactor = Redactor(secrets)
    inner = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(RedactingFormatter(inner, redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return redactor


def log_cycle(
    logger: logging.Logger,
    plan: Mapping[str, Any],
    *,
    submitted: int,
    cancelled: int,
    errors: int,
    duration_s: float,
    dry_run: bool = False,
) -> str:
    """The one INFO line of a cycle (what it saw and did), then its decisions at DEBUG
    (:func:`log_plan`). Returns the summary line."""
    groups = list(plan.get("groups", ()))
    idle = sum(int(g.get("idle_jobs", 0)) for g in groups)
    nowhere = sum(1 for g in groups if not g.get("site"))
    sites = [sp for sp in plan.get("sites", ()) if sp.get("submit") or sp.get("cancel")]
    acting = ", ".join(f"{sp.get('site')} +{sp.get('submit', 0)}/-{len(sp.get('cancel') or ())}" for sp in sites)
    line = (
        f"cycle{' (dry run)' if dry_run else ''} in {duration_s:.2f} s: {idle} idle job(s) in {len(groups)} "
        f"group(s) ({nowhere} match no site); submitted {submitted}, cancelled {cancelled}"
        f"{f' ({acting})' if acting else ''}; {errors} error(s)"
    )
    extra = {"cycle": True, "idle_jobs": idle, "groups": len(groups), "submitted": submitted}
    logger.info("%s", line, extra={**extra, "cancelled": cancelled, "errors": errors, "dry_run": dry_run})
    log_plan(logger, plan)
    return line


def log_plan(logger: logging.Logger, plan: Mapping[str, Any], level: int = logging.DEBUG) -> int:
    """One line (DEBUG unless ``level``) per site decision and per job-group decision of a plan
    (``Plan.to_dict()``), with the decision's fields as ``extra`` (JSON keys under the JSON
    format). Returns the count. The INFO log has one line per cycle (:func:`log_cycle`)."""
    if not logger.isEnabledFor(level):
        return 0
    n = 0
    for sp in plan.get("sites", ()):
        cancels = sp.get("cancel") or ()
        reasons = "; ".join(sp.get("reasons") or ()) or "-"
        logger.log(
            level,
            "decision site=%s submit=%d cancel=%d health=%s: %s",
            sp.get("site"),
            sp.get("submit", 0),
            len(cancels),
            sp.get("health", "ok"),
            reasons,
            extra={
                "decision": "site",
                "site": sp.get("site"),
                "submit": sp.get("submit", 0),
                "cancel": [c.get("pilot_id") for c in cancels],
                "needed": sp.get("needed"),
                "supply": sp.get("supply"),
                "bound_by": sp.get("bound_by"),
                "reasons": list(sp.get("reasons") or ()),
            },
        )
        n += 1
    for g in plan.get("groups", ()):
        logger.log(
            level,
            "decision group=%s idle=%d site=%s pilots=%d: %s",
            g.get("group_id"),
            g.get("idle_jobs", 0),
            g.get("site") or "nowhere",
            g.get("pilots", 0),
            g.get("reason", ""),
            extra={
                "decision": "group",
                "group": g.get("group_id"),
                "idle_jobs": g.get("idle_jobs", 0),
                "site": g.get("site"),
                "pilots": g.get("pilots", 0),
                "reason": g.get("reason", ""),
            },
        )
        n += 1
    return n
