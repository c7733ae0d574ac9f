"""The access line's atoms, worked out on demand (``serving/access_log.py``), read exactly as
gunicorn's own, for its default format and for every atom its documentation lists; and the one
place they differ on purpose: a file sent with sendfile() counts its bytes. Live lines are in
tests/live/test_access_log.py."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from observability.logs import JsonFormatter
from serving.access_log import AccessLogger, Atoms

EVERY_ATOM = " ".join(
    f"%({atom})s"
    for atom in [*"hlutrsmUqHbBfaTDMLp", "{user-agent}i", "{X-Request-ID}o", "{raw_uri}e", "{absent}i", "zz"]
)
FORMATS = [Config().access_log_format, EVERY_ATOM, '%(h)s "%({X-Forwarded-For}i)s" %({wsgi.url_scheme}e)s']
ENVIRON = {
    "REMOTE_ADDR": "10.1.2.3",
    "REQUEST_METHOD": "GET",
    "RAW_URI": '/orgs/CIEL/sources/CIEL/?q="quoted"',
    "PATH_INFO": "/orgs/CIEL/sources/CIEL/",
    "QUERY_STRING": 'q="quoted"',
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_USER_AGENT": "ocldev/2.0",
    "HTTP_REFERER": "https://example.org/",
    "HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0",  # alice:secret
    "wsgi.url_scheme": "https",
}
REQUEST = SimpleNamespace(
    headers=[("USER-AGENT", "ocldev/2.0"), ("X-FORWARDED-FOR", "1.1.1.1"), ("X-FORWARDED-FOR", "2.2.2.2")]
)
TOOK = timedelta(seconds=1, microseconds=234_567)


def response(sent: int | None, length: int | None = None, status: str = "200 OK") -> SimpleNamespace:
    headers = [("Content-Type", "application/json"), ("X-Request-ID", "rid-1")]
    return SimpleNamespace(
        status=status, status_code=int(status.split()[0]), sent=sent, response_length=length, headers=headers
    )


@pytest.fixture
def logger(monkeypatch) -> AccessLogger:
    made = AccessLogger(Config())
    monkeypatch.setattr(made, "now", lambda: "[02/Dec/2026:21:00:00 +0000]")
    return made


@pytest.mark.parametrize("line_format", FORMATS)
@pytest.mark.parametrize("sent", [None, 0, 1234])
def test_every_atom_reads_as_gunicorn_reads_it(logger, line_format, sent) -> None:
    resp = response(sent)
    gunicorn_line = line_format % SafeAtoms(Logger.atoms(logger, resp, REQUEST, ENVIRON, TOOK))
    assert line_format % Atoms(logger, resp, REQUEST, ENVIRON, TOOK) == gunicorn_line
    assert "alice" in (EVERY_ATOM % Atoms(logger, resp, REQUEST, ENVIRON, TOOK))


def test_a_file_sent_with_sendfile_counts_its_length_and_a_head_or_204_does_not(logger) -> None:
    assert Atoms(logger, response(0, 5000), REQUEST, ENVIRON, TOOK)["b"] == "5000"
    assert Atoms(logger, response(0, 5000), REQUEST, ENVIRON, TOOK)["B"] == 5000
    head = {**ENVIRON, "REQUEST_METHOD": "HEAD"}
    assert Atoms(logger, response(0, 5000), REQUEST, head, TOOK)["b"] == "0"
    assert Atoms(logger, response(0, 5000, "204 No Content"), REQUEST, ENVIRON, TOOK)["B"] == 0


def test_only_the_atoms_the_format_names_are_worked_out(logger) -> None:
    atoms = Atoms(logger, response(10), REQUEST, ENVIRON, TOOK)
    # `%` with a mapping is how logging fills the access format: the very path under test.
    assert "%(s)s %(b)s" % atoms == "200 10"  # noqa: UP031
    assert set(atoms) == {"s", "b"}


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_logger_writes_the_line_and_the_json_formatter_reads_the_same_atoms(monkeypatch) -> None:
    config = Config()
    config.set("accesslog", "-")
    logger = AccessLogger(config)
    monkeypatch.setattr(logger, "now", lambda: "[02/Dec/2026:21:00:00 +0000]")
    kept = Kept()
    logger.access_log.addHandler(kept)
    try:
        logger.access(response(1234), REQUEST, ENVIRON, TOOK)
    finally:
        logger.access_log.removeHandler(kept)
    (record,) = kept.records
    assert record.getMessage().startswith('10.1.2.3 - alice [02/Dec/2026:21:00:00 +0000] "GET /orgs/CIEL/')
    assert ' 200 1234 "https://example.org/" "ocldev/2.0"' in record.getMessage()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["status"] == 200 and entry["bytes"] == 1234 and entry["duration_ms"] == 1234
    assert entry["request_id"] == "rid-1" and entry["path"] == "/orgs/CIEL/sources/CIEL/"
    assert entry["query"] == 'q="quoted"' and entry["remote"] == "10.1.2.3"
    assert f"<{os.getpid()}>" == Atoms(logger, response(1), REQUEST, ENVIRON, TOOK)["p"]
