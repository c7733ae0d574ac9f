"""Gunicorn's access log, with the bytes of file downloads counted.

Gunicorn sends a file (a filesystem archive behind a download link) with ``sendfile()``, which
bypasses its own byte counter, so the access log said ``0`` for every download: the one response
whose size an operator most wants to see. A whole file went out when sendfile returned, so its
length (the ``Content-Length`` the response declared) is what was sent. Used by
``deploy/gunicorn.conf.py`` (``logger_class``); every other atom is gunicorn's own.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

NO_BODY_STATUSES = (204, 304)


class AccessLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        length = getattr(resp, "response_length", None)
        if atoms.get("B") == 0 and length and _has_body(environ, resp):
            atoms["B"] = length
            atoms["b"] = str(length)
        return atoms


def _has_body(environ: dict[str, Any], resp: Any) -> bool:
    status = resp.status_code if hasattr(resp, "status_code") else int(str(resp.status).split()[0])
    return environ.get("REQUEST_METHOD") != "HEAD" and status >= 200 and status not in NO_BODY_STATUSES
