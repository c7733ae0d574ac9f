"""Log lines as JSON objects (``LOG_FORMAT=json``), one per line, with what ties them together.

A line written while a request is answered carries its request id (the middleware in
``operations`` sets it); a line written by an export job carries the export id and the RQ job id.
gunicorn's access lines go through the same formatter (``deploy/gunicorn.conf.py``), with the
request's method, path, status, size, duration and request id as fields of their own.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from rq import get_current_job
from rq.job import Job

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# Set by the RQ worker around each job (jobqueue/worker.py): its own lines about the job and
# every line of the work horse it forks carry the job's ids, rq's own included.
running_job: ContextVar[dict[str, Any] | None] = ContextVar("running_job", default=None)

# Job function (dotted name) -> the field its first argument goes under: each app names its own
# jobs' (``ocl_export``: ``export_id``), so a line says which row a job works on.
JOB_ARGUMENT_FIELDS: dict[str, str] = {}
# The LogRecord's own attributes; anything else on a record came from ``extra=`` and is kept.
RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# gunicorn's access record carries its atoms as ``args``; these are the ones worth a field.
ACCESS_FIELDS = {
    "m": "method",
    "U": "path",
    "q": "query",
    "s": "status",
    "B": "bytes",
    "h": "remote",
    "a": "user_agent",
    "M": "duration_ms",
    "{x-request-id}o": "request_id",
}


def job_fields(job: Job) -> dict[str, Any]:
    fields: dict[str, Any] = {"job_id": job.id}
    argument = JOB_ARGUMENT_FIELDS.get(job.func_name)
    if argument is not None and job.args:
        fields[argument] = job.args[0]
    return fields


def job_context() -> dict[str, Any]:
    """The export and RQ job this process is running, if any (rq's current job covers workers
    of other classes, such as the tests' SimpleWorker)."""
    running = running_job.get()
    if running is not None:
        return running
    job = get_current_job()
    return job_fields(job) if job is not None else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry["message"] = "access"
            for atom, field in ACCESS_FIELDS.items():
                value = record.args.get(atom)
                if value in (None, "-", ""):
                    continue
                if field in ("status", "bytes", "duration_ms"):
                    entry[field] = int(value)
                else:  # gunicorn escaped the quotes for its text format; JSON escapes its own
                    entry[field] = value.replace('\\"', '"') if isinstance(value, str) else value
        else:
            entry["message"] = record.getMessage()
        current_request = request_id.get()
        if current_request is not None:
            entry.setdefault("request_id", current_request)
        entry.update(job_context())
        for key, value in record.__dict__.items():
            if key not in RECORD_FIELDS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
