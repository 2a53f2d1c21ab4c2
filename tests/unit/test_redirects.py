"""Where a browser may be sent after signing in: paths on this site only (``shared.accounts.redirects``)."""

from __future__ import annotations

import pytest

from api.web.auth_pages import safe_next
from shared.accounts.redirects import has_unsafe_characters, same_site_path
from tests.redirect_cases import HOSTILE_NEXT, SAME_SITE_NEXT


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_hostile_targets_are_refused(target: str) -> None:
    assert same_site_path(target) is None
    assert safe_next(target) == "/dashboard"


@pytest.mark.parametrize("target", SAME_SITE_NEXT)
def test_same_site_paths_are_kept(target: str) -> None:
    assert same_site_path(target) == target
    assert safe_next(target) == target


def test_empty_overlong_and_deeply_encoded_targets_are_refused() -> None:
    assert same_site_path(None) is None and same_site_path("") is None
    assert same_site_path("/" + "a" * 2000) is None
    assert same_site_path("/%25252525252F/evil.invalid") is None  # still changing after several decodings


def test_unsafe_characters() -> None:
    assert not has_unsafe_characters("https://dashboard.conduit.test/keys?x=1")
    assert all(has_unsafe_characters(f"https://a.test/{c}") for c in ("\t", "\n", " ", "\u00a0", "\u202e", "\\"))
