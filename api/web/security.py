"""Security headers of the website's pages: a strict Content-Security-Policy and friends.

Pages load scripts, styles and images from this origin only (no inline script, no inline style), may be
framed by nobody, and send forms only here. Output images may come from the storage's origin when it is
not this one (S3-compatible storage), so ``img-src`` also allows https images.
"""

from __future__ import annotations

from typing import Any

from litestar import Response

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "media-src 'self' https:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

# Paths that are not website pages: the JSON API, its documentation, health checks and static files.
NOT_PAGES = ("/v1/", "/docs", "/healthz", "/readyz", "/metrics", "/static/")


def is_page_path(path: str) -> bool:
    return path != "/v1" and not path.startswith(NOT_PAGES)


def add_page_headers(response: Response[Any], *, private: bool) -> None:
    """Set the security headers on a page's response; ``private`` pages (signed in) are never cached."""
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Cache-Control"] = "no-store" if private else "no-cache"
