"""Sign-in device cookies (``shared.accounts.devices``): signed, bound to one address, several per browser."""

from __future__ import annotations

from shared.accounts.devices import MAX_ENTRIES, DeviceCookies

DEVICES = DeviceCookies(b"test secret")


def test_a_cookie_names_a_device_for_its_address_only() -> None:
    cookie = DEVICES.issue(None, "owner@example.com")
    device = DEVICES.device_for(cookie, "owner@example.com")
    assert device is not None and device in cookie
    assert "owner" not in cookie
    assert DEVICES.device_for(cookie, "someone@example.com") is None
    assert DeviceCookies(b"another secret").device_for(cookie, "owner@example.com") is None


def test_a_sign_in_replaces_its_addresss_entry_and_keeps_the_others() -> None:
    first = DEVICES.issue(None, "a@example.com")
    both = DEVICES.issue(first, "b@example.com")
    again = DEVICES.issue(both, "a@example.com")
    assert DEVICES.device_for(again, "a@example.com") not in (None, DEVICES.device_for(first, "a@example.com"))
    assert DEVICES.device_for(again, "b@example.com") == DEVICES.device_for(both, "b@example.com")
    assert len(again.split("~")) == 2


def test_a_browser_keeps_the_newest_entries() -> None:
    cookie = None
    for n in range(MAX_ENTRIES + 2):
        cookie = DEVICES.issue(cookie, f"user{n}@example.com")
    assert cookie is not None and len(cookie.split("~")) == MAX_ENTRIES
    assert DEVICES.device_for(cookie, f"user{MAX_ENTRIES + 1}@example.com") is not None
    assert DEVICES.device_for(cookie, "user0@example.com") is None


def test_garbage_and_tampering_are_no_cookie() -> None:
    cookie = DEVICES.issue(None, "owner@example.com")
    device, signature = cookie.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for value in ("", "junk", f"{device}.{flipped}", f"{device}x.{signature}", cookie * 40, "~".join(["junk"] * 9)):
        assert DEVICES.device_for(value, "owner@example.com") is None
