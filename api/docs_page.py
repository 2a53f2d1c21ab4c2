"""``/docs``: the OpenAPI document rendered by Swagger UI from files Conduit serves itself.

The renderer's JavaScript, stylesheet and icon come from the ``swagger-ui-bundle-v2`` package (Swagger UI's own
distribution files, with their licence, installed with Conduit from PyPI) and are served under
``/docs/assets/swagger-ui-<version>/``: the page loads nothing from another host, so it works on a machine
without internet. The versioned path lets browsers keep the files for a year.
"""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

ASSETS = f"/assets/{swagger_ui_path.name}"  # under the docs path: /docs/assets/swagger-ui-5.31.0


class SelfHostedSwaggerUI(SwaggerRenderPlugin):
    """Litestar's Swagger UI page, pointed at the bundled files instead of a CDN."""

    def __init__(self, docs_path: str) -> None:
        assets = docs_path.rstrip("/") + ASSETS
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon=f'<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">',
        )

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(
                path=ASSETS,
                directories=[swagger_ui_path],
                cache_control=CacheControlHeader(max_age=365 * 24 * 3600, public=True),
                include_in_schema=False,
                name="swagger-ui-assets",
            )
        )
