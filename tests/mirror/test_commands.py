"""``subscribe``, ``subscriptions`` and ``sync``; the periodic job on RQ's schedule; the admin view."""

from __future__ import annotations

import io

import django_rq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry

from jobqueue.queue import work_queue
from mirror.jobs import run_subscription, schedule, waiting_jobs
from mirror.models import Subscription
from tests.conftest import client_for

URL = "https://ocl.example.org/orgs/CIEL/sources/CIEL/"


@pytest.fixture(autouse=True)
def no_retries(settings):
    settings.MIRROR_ATTEMPTS = 1


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_subscribe_saves_the_subscription_and_puts_its_first_run_on_the_schedule(redis_conn) -> None:
    out = run("subscribe", URL, "--token-env", "CIEL_TOKEN", "--no-head", "--every", "600")

    subscription = Subscription.objects.get()
    assert (subscription.url, subscription.token_env, subscription.follow_released, subscription.follow_head) == (
        URL,
        "CIEL_TOKEN",
        True,
        False,
    )
    assert subscription.interval == 600
    assert f"subscription {subscription.pk} created" in out and "token: env:CIEL_TOKEN" in out
    assert len(waiting_jobs(subscription.pk)) == 1
    # Subscribing again updates it and does not add a second waiting run.
    assert "updated" in run("subscribe", URL.rstrip("/"), "--token-file", "/run/secrets/ciel")
    assert Subscription.objects.get().credentials == "file:/run/secrets/ciel"
    assert len(waiting_jobs(subscription.pk)) == 1


@pytest.mark.django_db
def test_subscribe_sets_how_often_heads_membership_is_reconciled() -> None:
    run("subscribe", URL, "--no-schedule")
    assert (Subscription.objects.get().reconcile_hours, Subscription.objects.get().reconciled_on) == (24, None)
    run("subscribe", URL, "--no-schedule", "--reconcile-every", "0")
    assert Subscription.objects.get().reconcile_hours == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["https://ocl.example.org/orgs/CIEL/"], "not a repository URL"),
        ([URL, "--no-head", "--no-released"], "released versions, HEAD, or both"),
        ([URL, "--every", "5"], "at least 60"),
        ([URL, "--reconcile-every", "-1"], "0 hours"),
    ],
)
@pytest.mark.django_db
def test_subscribe_refuses_what_cannot_be_mirrored(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("subscribe", *args, "--no-schedule")
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_a_run_puts_the_next_one_on_the_schedule_even_when_it_fails(redis_conn) -> None:
    run("subscribe", "http://127.0.0.1:9/orgs/CIEL/sources/CIEL/", "--no-schedule", "--every", "900")
    subscription = Subscription.objects.get()

    result = run_subscription(subscription.pk)
    finished = timezone.now()

    assert "ConnectionError" in result["error"]
    [job_id] = waiting_jobs(subscription.pk)
    registry = ScheduledJobRegistry(queue=work_queue())
    planned = registry.get_scheduled_time(job_id)
    job = work_queue().fetch_job(job_id)
    assert (job.func_name, job.args) == ("mirror.jobs.run_subscription", (subscription.pk,))
    assert 899 <= (planned - finished).total_seconds() <= 901
    assert schedule(subscription) is None  # one waiting run per subscription


@pytest.mark.django_db
def test_subscriptions_prints_a_table_and_sync_says_which_run_failed(redis_conn) -> None:
    assert "no subscriptions" in run("subscriptions")
    run("subscribe", "http://127.0.0.1:9/orgs/CIEL/sources/CIEL/", "--no-schedule")

    with pytest.raises(CommandError, match="did not complete"):
        run("sync", "--all", "--quiet")
    table = run("subscriptions").splitlines()

    assert table[0].split()[:4] == ["id", "url", "follows", "every"]
    assert "released + HEAD" in table[1] and "ConnectionError" in table[1]
    with pytest.raises(CommandError, match="no subscription 99"):
        run("sync", "99")


@pytest.mark.django_db
def test_the_subscriptions_view_is_for_staff_only_and_shows_no_secret(staff, bob, anon_client) -> None:
    run("subscribe", URL, "--token-env", "CIEL_TOKEN", "--no-schedule")
    pk = Subscription.objects.get().pk

    listing = client_for(staff).get("/mirror/subscriptions/")
    detail = client_for(staff).get(f"/mirror/subscriptions/{pk}")

    assert listing.status_code == 200 and listing.json()[0]["url"] == URL
    assert detail.json()["credentials"] == "env:CIEL_TOKEN"
    assert detail.json()["items_received"] == 0
    assert client_for(staff).get("/mirror/subscriptions/999/").json() == {"detail": "No such subscription."}
    assert client_for(bob).get("/mirror/subscriptions/").status_code == 403
    assert anon_client.get("/mirror/subscriptions/").status_code == 401


@pytest.mark.django_db
def test_a_worker_with_the_scheduler_runs_the_scheduled_sync(redis_conn) -> None:
    run("subscribe", "http://127.0.0.1:9/orgs/CIEL/sources/CIEL/", "--every", "900")  # first run: now

    worker = django_rq.get_worker(settings.EXPORT_QUEUE, worker_class=SimpleWorker)
    assert worker.work(burst=True, with_scheduler=True)

    subscription = Subscription.objects.get()
    assert (subscription.runs, subscription.failures) == (1, 1)
    assert "ConnectionError" in subscription.last_error
    assert len(waiting_jobs(subscription.pk)) == 1  # the next run, in 900 s


@pytest.mark.django_db
def test_unsubscribe_deletes_the_subscription_and_its_waiting_run(redis_conn) -> None:
    run("subscribe", URL)
    subscription = Subscription.objects.get()

    out = run("unsubscribe", str(subscription.pk))

    assert "1 waiting run(s) cancelled" in out
    assert not Subscription.objects.exists() and waiting_jobs(subscription.pk) == []
    assert run_subscription(subscription.pk) == {
        "subscription": subscription.pk,
        "error": "the subscription no longer exists",
    }
    with pytest.raises(CommandError, match="no subscription"):
        run("unsubscribe", str(subscription.pk))
