"""Every error is JSON with the right status; a database that is busy or away is a 503, not a 500."""

from __future__ import annotations

from django.db import OperationalError

from foundation.errors import exception_handler


def test_a_busy_or_unreachable_database_is_a_503_with_retry_after() -> None:
    response = exception_handler(OperationalError("database is locked"), {"view": None})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "try again" in response.data["detail"]


def test_an_unexpected_error_is_a_json_500() -> None:
    response = exception_handler(RuntimeError("boom"), {"view": None})
    assert response.status_code == 500
    assert response.data == {"detail": "Internal server error."}


def test_unknown_urls_answer_json_404(client) -> None:
    response = client.get("/no/such/place/at/all/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}
