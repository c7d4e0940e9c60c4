"""Structured logs: JSON lines, one line per decision, and no secret ever printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from tests.api.conftest import last_plan

from campus_factory.logs import MASK, JsonFormatter, Redactor, configure_logging, log_cycle, log_plan, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwaWxvdCJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("password=hunter2 user=bob", "hunter2"),
        ('{"token": "tok-999", "site": "alpha"}', "tok-999"),
        ("api_key: 'k-123'", "k-123"),
        ("secret_key=AKIAXYZ&region=us", "AKIAXYZ"),
        (f"condor_token_create printed {JWT}", JWT),
        ("ledger postgresql+psycopg://factory:pa55word@db:5432/cf", "pa55word"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXk"),
    ],
)
def test_redact_patterns(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and MASK in out


def test_redact_keeps_ordinary_text() -> None:
    text = "alpha: submitted 3 pilot(s) as 101, 102, 103 (token scope ADVERTISE_STARTD)"
    assert redact(text) == text
    assert redact("the literal s3cr3t-value leaked", ["s3cr3t-value"]) == f"the literal {MASK} leaked"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, Redactor]]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    redactor = configure_logging("json", level=logging.DEBUG, secrets=["literal-api-token"], stream=stream)
    try:
        yield logging.getLogger("campus_factory.test"), stream, redactor
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_extra_fields_and_no_secrets(
    captured: tuple[logging.Logger, io.StringIO, Redactor],
) -> None:
    log, stream, redactor = captured
    log.info("minted %s for %s", JWT, "alpha", extra={"site": "alpha", "cmd": "password=x1y2z3"})
    log.warning("client sent literal-api-token")
    redactor.add_secret("added-later-secret")
    try:
        raise RuntimeError("boom with password=p4ss")
    except RuntimeError:
        log.exception("failed added-later-secret")
    first, second, third = lines(stream)
    assert first["level"] == "info" and first["logger"] == "campus_factory.test" and first["site"] == "alpha"
    assert first["msg"] == f"minted {MASK} for alpha" and first["cmd"] == f"password={MASK}"
    assert str(first["ts"]).endswith("Z")
    assert second["msg"] == f"client sent {MASK}"
    assert third["msg"] == f"failed {MASK}" and "RuntimeError" in str(third["exc"]) and "p4ss" not in str(third["exc"])
    assert "x1y2z3" not in stream.getvalue() and "literal-api-token" not in stream.getvalue()


def test_log_plan_one_line_per_decision(captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    log, stream, _ = captured
    assert log_plan(log, last_plan().to_dict()) == 4
    records = lines(stream)
    assert [r["decision"] for r in records] == ["site", "site", "group", "group"]
    assert records[0]["msg"] == "decision site=alpha submit=2 cancel=0 health=ok: 2 job group(s) want 3 pilots"
    assert records[1]["cancel"] == ["b9"]
    assert records[3]["msg"] == "decision group=g-dave idle=2 site=nowhere pilots=0: no site has 256000 MB of memory"
    assert {r["level"] for r in records} == {"debug"}  # the INFO log has one line per cycle


def test_log_cycle_one_info_line_then_the_decisions(captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    log, stream, _ = captured
    line = log_cycle(log, last_plan().to_dict(), submitted=2, cancelled=1, errors=0, duration_s=1.234)
    records = lines(stream)
    assert [r["level"] for r in records] == ["info", "debug", "debug", "debug", "debug"]
    assert (
        records[0]["msg"]
        == line
        == (
            "cycle in 1.23 s: 14 idle job(s) in 2 group(s) (1 match no site); "
            "submitted 2, cancelled 1 (alpha +2/-0, beta +0/-1); 0 error(s)"
        )
    )
    assert (records[0]["idle_jobs"], records[0]["submitted"], records[0]["cycle"]) == (14, 2, True)


def test_text_format_is_redacted_too() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("text", stream=stream)
        logging.getLogger("x").info("token=abc123 ok")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    assert stream.getvalue().rstrip().endswith(f"INFO x: token={MASK} ok")
    assert isinstance(JsonFormatter(), logging.Formatter)


def test_other_handlers_see_the_record_unmasked(
    captured: tuple[logging.Logger, io.StringIO, Redactor],
) -> None:
    """The redacting handler formats a copy: a handler after it (an operator's audit file, a
    test's capture) still gets the record as logged, and the record itself is unchanged."""
    log, stream, _ = captured
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        log.info("token=%s", "s3cr3t-value", extra={"cmd": "password=hunter22"})
    finally:
        logging.getLogger().removeHandler(keep)
    (line,) = lines(stream)
    assert line["msg"] == f"token={MASK}" and line["cmd"] == f"password={MASK}"
    (record,) = seen
    assert record.getMessage() == "token=s3cr3t-value" and record.__dict__["cmd"] == "password=hunter22"
