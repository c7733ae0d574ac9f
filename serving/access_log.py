"""Gunicorn's access log, with the bytes of file downloads counted and each atom worked out only
when the line's format asks for it.

Gunicorn sends a file (a filesystem archive behind a download link) with ``sendfile()``, which
bypasses its own byte counter, so the access log said ``0`` for every download: the one response
whose size an operator most wants to see. A whole file went out when sendfile returned, so its
length (the ``Content-Length`` the response declared) is what was sent.

Gunicorn builds every atom for every line: one per request header, response header and WSGI
environ variable (about sixty), then copies them all to escape quotes, to fill a format that
names nine. Measured under load (bench/bench_requests.py, py-spy), the access line was a sixth of
a kept answer's Python time. :class:`Atoms` holds what the atoms come from and works each one out
on demand: the line is the same, for gunicorn's default format or any ``access_log_format`` (the
atoms are those of gunicorn's documentation), and for the JSON lines of ``observability/logs.py``.
Used by ``deploy/gunicorn.conf.py`` (``logger_class``).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any

from gunicorn.glogging import Logger

NO_BODY_STATUSES = (204, 304)


class Atoms(dict):
    """The access line's atoms, each computed the first time the format (or a formatter) reads it.

    Like gunicorn's own wrapper: a ``{name}i`` / ``{name}o`` / ``{name}e`` key is matched without
    regard to case, a string has its double quotes escaped, and an unknown atom reads ``-``.
    """

    def __init__(self, logger: Logger, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        super().__init__()
        self._logger = logger
        self._resp = resp
        self._req = req
        self._environ = environ
        self._time = request_time

    def __bool__(self) -> bool:
        """Never empty to logging, which hands a format its mapping only when that is truthy."""
        return True

    def __missing__(self, key: str) -> Any:
        value = self._work_out(key)
        if isinstance(value, str):
            value = value.replace('"', '\\"')
        self[key] = value
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        """The atom, worked out (``dict.get`` would not): what the JSON formatter reads."""
        return self[key]

    def _work_out(self, key: str) -> Any:
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, where = key[1:-2].lower(), key[-1]
            if where == "i":
                return _header(getattr(self._req, "headers", ()), name)
            if where == "o":
                return _header(getattr(self._resp, "headers", ()), name)
            if where == "e":
                return _last(self._environ.items(), name)
            return "-"
        atom = ATOMS.get(key)
        return "-" if atom is None else atom(self)

    # the atoms' sources, for ATOMS
    def env(self, name: str, default: Any = None) -> Any:
        return self._environ.get(name, default)

    def status(self) -> str:
        status = self._resp.status
        return status.split(None, 1)[0] if isinstance(status, str) else status

    def sent(self) -> int | None:
        """Bytes of the body sent; a whole file sent with sendfile() counts as its length."""
        sent = getattr(self._resp, "sent", None)
        length = getattr(self._resp, "response_length", None)
        if sent == 0 and length and _has_body(self._environ, self._resp):
            return length
        return sent

    def seconds(self) -> int:
        return self._time.seconds

    def micros(self) -> int:
        return self._time.microseconds

    def user(self) -> str:
        return self._logger._get_user(self._environ) or "-"

    def now(self) -> str:
        return self._logger.now()


ATOMS: dict[str, Callable[[Atoms], Any]] = {
    "h": lambda a: a.env("REMOTE_ADDR", "-"),
    "l": lambda a: "-",
    "u": Atoms.user,
    "t": Atoms.now,
    "r": lambda a: f"{a.env('REQUEST_METHOD')} {a.env('RAW_URI')} {a.env('SERVER_PROTOCOL')}",
    "s": Atoms.status,
    "m": lambda a: a.env("REQUEST_METHOD"),
    "U": lambda a: a.env("PATH_INFO"),
    "q": lambda a: a.env("QUERY_STRING"),
    "H": lambda a: a.env("SERVER_PROTOCOL"),
    "b": lambda a: "-" if (sent := a.sent()) is None else str(sent),
    "B": Atoms.sent,
    "f": lambda a: a.env("HTTP_REFERER", "-"),
    "a": lambda a: a.env("HTTP_USER_AGENT", "-"),
    "T": Atoms.seconds,
    "D": lambda a: a.seconds() * 1_000_000 + a.micros(),
    "M": lambda a: a.seconds() * 1000 + a.micros() // 1000,
    "L": lambda a: f"{a.seconds()}.{a.micros():06d}",
    "p": lambda a: f"<{os.getpid()}>",
}


class AccessLogger(Logger):
    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info(self.cfg.access_log_format, Atoms(self, resp, req, environ, request_time))
        except Exception:
            self.error(traceback.format_exc())


def _header(headers: Any, name: str) -> str:
    return _last(headers.items() if hasattr(headers, "items") else headers, name)


def _last(pairs: Any, name: str) -> Any:
    """The value of the last pair named ``name`` in any case (gunicorn's atoms kept the last), else -."""
    found = "-"
    for key, value in pairs:
        if key.lower() == name:
            found = value
    return found


def _has_body(environ: dict[str, Any], resp: Any) -> bool:
    status = resp.status_code if hasattr(resp, "status_code") else int(str(resp.status).split()[0])
    return environ.get("REQUEST_METHOD") != "HEAD" and status >= 200 and status not in NO_BODY_STATUSES
