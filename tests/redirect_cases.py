"""``next`` values an attacker would try after sign-in (as the server receives them, already URL-decoded), and
same-site paths that must keep working. Shared by the unit tests and the browser test."""

from __future__ import annotations

HOSTILE_NEXT = [
    "/\t/evil.invalid/phish",  # browsers drop tabs and newlines: "//evil.invalid/phish"
    "/\n/evil.invalid/phish",
    "/\r/evil.invalid/phish",
    "\t//evil.invalid/phish",
    " //evil.invalid/phish",  # leading spaces are trimmed
    "/\x00/evil.invalid/phish",
    "/\u200b/evil.invalid/phish",  # zero-width space
    "//evil.invalid/phish",
    "///evil.invalid/phish",
    "/\\evil.invalid/phish",  # a back slash is a slash
    "/\\/evil.invalid/phish",
    "\\\\evil.invalid/phish",
    "https://evil.invalid/phish",
    "http:evil.invalid/phish",
    "HTTPS://evil.invalid",
    "javascript:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "evil.invalid/phish",
    "/%2F/evil.invalid/phish",  # encoded forms that a second decoding would turn into the real thing
    "/%2f%2fevil.invalid/phish",
    "/%5Cevil.invalid/phish",
    "/%09/evil.invalid/phish",
    "/%250a/evil.invalid/phish",
]

SAME_SITE_NEXT = [
    "/dashboard",
    "/dashboard/keys",
    "/dashboard/usage?from=2026-11-01&model=flux-schnell",
    "/dashboard/support?status=open#tickets",
    "/models?q=a%20lighthouse",
]
