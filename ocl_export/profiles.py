"""Which answers the export resource gives: the v1 contract's, or those of an OCL v2 server.

Today's OCL clients were written against OCL v2 (oclapi2), which answers the same export
resource with other status codes than the v1 contract in ``export-api.md``: ocldev and the
``ocl`` CLI fail on the v1 answers, while the OpenMRS module reads both. A deployment picks one
profile with ``OCL_COMPAT`` (``v1`` by default). Everything that differs between the two sits in
the table below, so the export views keep one code path: they work out the situation of the
export (none, being produced, ready, just queued, just deleted or cancelled) and ask the profile what to
answer for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings

V1 = "v1"
V2 = "v2"
NAMES = (V1, V2)


class Situation(StrEnum):
    """Where the export of one version and format stands, as a request finds or leaves it."""

    NONE = "none"  # no export, a failed one, or an out-of-date export of HEAD
    BUSY = "busy"  # pending or processing
    READY = "ready"  # completed
    QUEUED = "queued"  # this POST has just queued it
    DELETED = "deleted"  # this DELETE has just removed it
    CANCELLED = "cancelled"  # this DELETE has just cancelled it (it was pending or processing)


class Reply(StrEnum):
    """What goes with the status code."""

    STATE = "state"  # no body; X-Export-State (and Retry-After while work is under way)
    JOB = "job"  # the job description and its status link, as a 202 carries them
    LOCATION = "location"  # redirect to a one-use download link of this service
    ARCHIVE = "archive"  # redirect to a URL that answers 200 with the archive itself
    DELETED = "deleted"  # a JSON note of what was deleted
    EMPTY = "empty"  # no body at all
    ERROR = "error"  # a JSON error ({"detail": ...})


@dataclass(frozen=True)
class Answer:
    status: int
    reply: Reply


# GET and HEAD answer alike; "GET" stands for both.
Table = dict[tuple[str, Situation], Answer]

V1_ANSWERS: Table = {
    ("GET", Situation.NONE): Answer(204, Reply.STATE),
    ("GET", Situation.BUSY): Answer(204, Reply.STATE),
    ("GET", Situation.READY): Answer(303, Reply.LOCATION),
    ("POST", Situation.QUEUED): Answer(202, Reply.JOB),
    ("POST", Situation.BUSY): Answer(409, Reply.ERROR),
    ("POST", Situation.READY): Answer(303, Reply.LOCATION),
    ("DELETE", Situation.DELETED): Answer(200, Reply.DELETED),
    ("DELETE", Situation.NONE): Answer(204, Reply.EMPTY),
    ("DELETE", Situation.CANCELLED): Answer(202, Reply.JOB),
}

# oclapi2's answers. Its 302 goes to the storage URL, which answers 200 itself: the CLI follows
# exactly one redirect and ocldev needs a final 200.
V2_ANSWERS: Table = {
    ("GET", Situation.NONE): Answer(204, Reply.STATE),
    ("GET", Situation.BUSY): Answer(208, Reply.JOB),
    ("GET", Situation.READY): Answer(302, Reply.ARCHIVE),
    ("POST", Situation.QUEUED): Answer(202, Reply.JOB),
    ("POST", Situation.BUSY): Answer(208, Reply.JOB),
    ("POST", Situation.READY): Answer(303, Reply.ARCHIVE),
    ("DELETE", Situation.DELETED): Answer(204, Reply.EMPTY),
    ("DELETE", Situation.NONE): Answer(404, Reply.ERROR),
    # FHIR Bulk Data's answer to a DELETE of a job under way, oclapi2 having none of its own.
    ("DELETE", Situation.CANCELLED): Answer(202, Reply.JOB),
}


@dataclass(frozen=True)
class Profile:
    name: str
    answers: Table = field(repr=False)
    # OCL v2 lets a repository's administrators export HEAD (its live state); v1 never does.
    head_exportable: bool

    def answer(self, method: str, situation: Situation) -> Answer:
        return self.answers[("GET" if method == "HEAD" else method, situation)]


PROFILES: dict[str, Profile] = {
    V1: Profile(V1, V1_ANSWERS, head_exportable=False),
    V2: Profile(V2, V2_ANSWERS, head_exportable=True),
}

# The archive format a request gets when it names none, unless EXPORT_DEFAULT_FORMAT says
# otherwise: ocldev and the OCL web UI open zips only, and OCL v2 serves zips.
DEFAULT_FORMATS = {V1: "tgz", V2: "zip"}


def current_profile() -> Profile:
    """The deployment's profile (read at call time, so tests can switch it per test)."""
    return PROFILES[settings.OCL_COMPAT]
