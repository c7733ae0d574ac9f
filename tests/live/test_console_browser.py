"""The admin console on the live stack, in a real browser, and sessions beside the kept answers.

Playwright drives Debian's chromium (``/usr/bin/chromium``; deploy/test-services.sh installs it,
Playwright's own browser downloads are not used). A staff user logs in with a password, finds
the completed export among the exports, deletes it (the object is gone from the S3 server),
cancels one under way (queued while the worker is paused), and presses "sync now" on a subscription (the RQ worker runs the sync). What the browser saw is
saved as screenshots in the test's tmp directory.

With the read cache on (PostgreSQL, as deployed), a staff session's read of a private
repository must not become the answer an anonymous caller gets for the same URL.
"""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tests.conftest import FIXTURES
from tests.live.stack import LiveStack, listening, wait_until

pytestmark = pytest.mark.live

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = "/orgs/CIELTEST/sources/CIELTEST/"
PRIVATE = "/orgs/Secret/sources/Hidden/"
STAFF, PASSWORD = "operator", "a console password"


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with LiveStack("console", env={"MIRROR_ATTEMPTS": "1"}) as stack:
        stack.import_file(FIXTURES / "ocl-v1-CIELTEST-2015.zip", "--version", "v1")
        stack.token = stack.make_user(STAFF, staff=True)  # type: ignore[attr-defined]
        stack.shell(
            "from django.contrib.auth import get_user_model\n"
            f"user = get_user_model().objects.get(username={STAFF!r})\n"
            f"user.set_password({PASSWORD!r})\n"
            "user.save()\n"
            "from tests.factories import make_org, make_source\n"
            "make_source(make_org('Secret'), 'Hidden', public_access='None')\n"
        )
        wait_until(lambda: listening(stack) == stack.web_workers, 30, what="every web worker's read cache")
        yield stack


def one_value(stack: LiveStack, sql: str) -> object:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def logged_in(stack: LiveStack) -> requests.Session:
    """A session logged in through the console's login form, as a browser does it."""
    session = requests.Session()
    session.get(stack.url("/admin/login/"), timeout=30)
    form = {
        "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "username": STAFF,
        "password": PASSWORD,
        "next": "/admin/",
    }
    response = session.post(stack.url("/admin/login/"), data=form, timeout=30)
    assert response.status_code == 200 and response.url.endswith("/admin/")
    return session


def test_a_staff_sessions_read_of_a_private_repository_is_not_served_to_anonymous_callers(stack: LiveStack) -> None:
    session = logged_in(stack)
    for _ in range(3):  # a second and third read would come from a kept answer, were it kept
        answer = session.get(stack.url(PRIVATE), timeout=30)
        assert answer.status_code == 200 and answer.json()["id"] == "Hidden"
    anonymous = [requests.get(stack.url(PRIVATE), timeout=30) for _ in range(20)]
    assert {answer.status_code for answer in anonymous} == {404}
    assert all(answer.headers["Content-Type"] == "application/json" for answer in anonymous)


def export_completed(stack: LiveStack) -> dict:
    headers = {"Authorization": f"Token {stack.token}"}  # type: ignore[attr-defined]
    job = requests.post(stack.url(f"{REPO}v1/export/"), headers=headers, timeout=30).json()

    def done() -> dict | None:
        state = requests.get(f"{job['url']}?wait=5", headers=headers, timeout=30).json()
        return state if state["state"] == "completed" else None

    return wait_until(done, 120, what="the export to complete")


def stored_keys(stack: LiveStack) -> list[str]:
    listing = stack.s3_client().list_objects_v2(Bucket=stack.bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_staff_delete_an_export_and_sync_a_subscription_in_a_browser(stack: LiveStack, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    export = export_completed(stack)
    assert stored_keys(stack) == [f"exports/orgs/CIELTEST/sources/CIELTEST/{export['file_name']}"]
    stack.manage("subscribe", stack.url(REPO), "--no-schedule", "--every", "3600")
    shots: list[Path] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 800})

        def shot(name: str) -> None:
            shots.append(tmp_path / f"{len(shots) + 1}-{name}.png")
            page.screenshot(path=shots[-1], full_page=True)

        page.goto(stack.url("/admin/"))
        page.fill("#id_username", STAFF)
        page.fill("#id_password", PASSWORD)
        shot("login")
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(r".*/admin/$"))
        assert page.get_by_role("link", name="Exports", exact=True).is_visible()
        shot("console")

        # the completed export, found by the state filter; deleted by the action
        page.get_by_role("link", name="Exports", exact=True).click()
        page.wait_for_url(re.compile(r".*/admin/ocl_export/export/$"))
        page.locator("#changelist-filter").get_by_role("link", name="Completed", exact=True).click()
        page.wait_for_url(re.compile(r".*state__exact=completed"))  # a click only starts the navigation
        row = page.locator("#result_list tbody tr", has_text=f"{REPO}v1/")
        row.wait_for()
        shot("completed-exports")
        assert row.count() == 1 and "Completed" in row.inner_text(), page.locator("#content").inner_text()
        row.locator("input.action-select").check()
        page.select_option("select[name=action]", "delete_exports")
        page.click("button[name=index]")
        message = page.locator("ul.messagelist li").first.inner_text()
        assert message.startswith("Deleted, archive removed from storage:"), message
        shot("export-deleted")
        assert stored_keys(stack) == []
        assert requests.get(stack.url(f"{REPO}v1/export/"), timeout=30).status_code == 204

        # an export under way, cancelled by the action: the worker is paused, so it waits queued
        stack.kill("worker", signal.SIGSTOP)
        try:
            headers = {"Authorization": f"Token {stack.token}"}  # type: ignore[attr-defined]
            job = requests.post(stack.url(f"{REPO}v1/export/"), headers=headers, timeout=30).json()
            page.goto(stack.url("/admin/ocl_export/export/?state__exact=pending"))
            row = page.locator("#result_list tbody tr", has_text=f"{REPO}v1/")
            row.wait_for()
            row.locator("input.action-select").check()
            page.select_option("select[name=action]", "cancel_exports")
            page.click("button[name=index]")
            message = page.locator("ul.messagelist li").first.inner_text()
            assert message.startswith("Cancelled:"), message
            shot("export-cancelled")
        finally:
            stack.kill("worker", signal.SIGCONT)
        assert requests.get(job["url"], timeout=30).json()["state"] == "cancelled"
        assert stored_keys(stack) == []

        # sync now: the run goes to the queue and a worker runs it
        page.goto(stack.url("/admin/mirror/subscription/"))
        page.locator("#result_list tbody tr", has_text=stack.url(REPO)).locator("input.action-select").check()
        page.select_option("select[name=action]", "sync_now")
        page.click("button[name=index]")
        assert page.locator("ul.messagelist li").first.inner_text().startswith("Run queued:")
        shot("sync-queued")
        wait_until(lambda: one_value(stack, "SELECT runs FROM mirror_subscription") == 1, 90, what="the sync run")
        page.reload()
        shot("synced")
        assert one_value(stack, "SELECT last_error FROM mirror_subscription") == ""

        # the export queue's pages (django-rq) inside the console
        page.goto(stack.url("/admin/django_rq/dashboard/"))
        assert "exports" in page.locator("#content").inner_text()
        shot("queues")
        browser.close()

    assert all(path.stat().st_size > 10_000 for path in shots)
    css = requests.get(stack.url("/static/admin/css/base.css"), timeout=30)  # served by gunicorn itself
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    keep = Path("/tmp/console-screenshots")  # for whoever reads the run; the test needs none of it
    shutil.copytree(tmp_path, keep, dirs_exist_ok=True)
