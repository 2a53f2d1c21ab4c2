"""Error pages: what a person sees instead of the API's JSON error shape on the website's paths.

``api/errors.py`` keeps one handler per exception class for the whole app and asks ``is_page_path`` which
form to answer in: the JSON shape for ``/v1`` (and the docs), these pages for everything else.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.response import Template

from api.web.context import SignInRequired, Visitor, page, signin_redirect

log = logging.getLogger("conduit.web")

TITLES = {
    400: "That did not work",
    401: "Please sign in",
    402: "Not enough credits",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    409: "That did not work",
    413: "Too large",
    429: "Slow down",
    500: "Something went wrong",
    502: "A service we depend on failed",
    503: "Temporarily unavailable",
}


def error_page(status: int, message: str) -> Template:
    title = TITLES.get(status, "That did not work" if status < 500 else "Something went wrong")
    return page("error.html", Visitor(), status, title=title, status=status, message=message)


def handle_sign_in_required(_: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    return signin_redirect(exc.path)
