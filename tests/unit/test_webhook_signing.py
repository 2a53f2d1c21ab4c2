"""Signatures checked against the reference ``standardwebhooks`` implementation; schedule helpers."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.infra.jobs import delivery_job_id
from shared.webhooks import RETRY_SCHEDULE_S
from shared.webhooks.delivery import next_delay_s, parse_retry_after
from shared.webhooks.dispatch import epoch_ms
from shared.webhooks.outbox import parse_notification
from shared.webhooks.signing import SecretSet, generate_secret, secret_key, signature, signed_headers


def test_our_signature_is_the_reference_signature() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    now = int(time.time())
    body = b'{"type":"task.succeeded","data":{"id":"x","text":"caf\xc3\xa9"}}'
    headers = signed_headers([secret], "01a2-event", now, body)
    assert headers["webhook-signature"] == Webhook(secret).sign(
        "01a2-event", dt.datetime.fromtimestamp(now, dt.UTC), body.decode()
    )
    assert Webhook(secret).verify(body, headers)["data"]["text"] == "café"


def test_two_secrets_give_two_signatures_and_either_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"a":1}'
    headers = signed_headers([new, old], "msg", int(time.time()), body)
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(old).verify(body, headers) == {"a": 1}
    assert Webhook(new).verify(body, headers) == {"a": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # the body is covered
        Webhook(new).verify(b'{"a":2}', headers)
    tampered = {**headers, "webhook-id": "other"}  # and the id
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body, tampered)


def test_signature_is_hmac_of_id_timestamp_body() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the example secret of the specification
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == expected


def test_the_previous_secret_signs_only_until_it_expires() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rotating = SecretSet("new", "old", now + dt.timedelta(hours=1))
    assert rotating.signing(now) == ["new", "old"]
    assert rotating.signing(now + dt.timedelta(hours=1)) == ["new"]
    assert SecretSet("only").signing(now) == ["only"]


def test_retry_after_forms() -> None:
    now = time.time()
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("0", now) == 1  # never a busy loop
    assert parse_retry_after("999999999", now) == 86400  # at most a day
    date = email.utils.formatdate(now + 600, usegmt=True)
    assert 598 <= (parse_retry_after(date, now) or 0) <= 601
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_the_schedule() -> None:
    assert RETRY_SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert [next_delay_s(n, None) for n in range(1, 8)] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert next_delay_s(8, None) == 36000  # a manual retry past the schedule waits the longest step
    assert next_delay_s(1, 90.0) == 90.0


def test_job_ids_and_notifications() -> None:
    when = dt.datetime(2026, 11, 21, 12, 0, 0, 123999, tzinfo=dt.UTC)
    assert epoch_ms(when) == 1795262400123
    assert delivery_job_id(uuid.UUID(int=1), 2, 5) == "webhook:00000000-0000-0000-0000-000000000001:2:5"
    parsed = parse_notification("00000000-0000-0000-0000-000000000001:17,garbage,:")
    assert [(str(i), ms) for i, ms in parsed] == [("00000000-0000-0000-0000-000000000001", 17)]
