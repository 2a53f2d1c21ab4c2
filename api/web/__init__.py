"""The website and developer dashboard: server-rendered pages on the API's own origin.

``web_router()`` holds the pages and the static files; ``template_config()`` the Jinja environment.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.web import filters
from api.web.auth_pages import AuthPages
from api.web.console import ConsoleAccountPages
from api.web.console_moderation import ConsoleModerationPages
from api.web.console_ops import ConsoleOperationsPages
from api.web.dashboard import DashboardPages
from api.web.public import PublicPages
from api.web.team_pages import TeamPages
from api.web.work import WorkPages

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=TEMPLATES,
        engine=JinjaTemplateEngine,
        engine_callback=lambda engine: filters.register(engine.engine),
    )


def web_router() -> Router:
    static = create_static_files_router(
        path="/static",
        directories=[STATIC],
        include_in_schema=False,
    )
    return Router(
        path="/",
        route_handlers=[
            PublicPages,
            AuthPages,
            DashboardPages,
            TeamPages,
            WorkPages,
            ConsoleAccountPages,
            ConsoleOperationsPages,
            ConsoleModerationPages,
            static,
        ],
    )
