"""The settings of people's accounts: sign-up and reset links, sessions, sign-in throttling, OAuth providers
(Google, GitHub) and the signup reward, read from the environment by ``shared.settings.Settings``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.infra.env import SettingsError, env_bool, env_credits, env_int, env_str, origin_of


@dataclasses.dataclass(frozen=True, slots=True)
class OAuthProviderSettings:
    client_id: str | None = None
    client_secret: str | None = None
    authorize_url: str = ""
    token_url: str = ""
    userinfo_url: str = ""  # Google: the OpenID userinfo endpoint; GitHub: the API base (…/user, …/user/emails)

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)


GOOGLE_DEFAULTS = (
    "https://accounts.google.com/o/oauth2/v2/auth",
    "https://oauth2.googleapis.com/token",
    "https://openidconnect.googleapis.com/v1/userinfo",
)
GITHUB_DEFAULTS = (
    "https://github.com/login/oauth/authorize",
    "https://github.com/login/oauth/access_token",
    "https://api.github.com",
)


@dataclasses.dataclass(frozen=True, slots=True)
class AuthSettings:
    """People's accounts: sign-up links, sessions, sign-in throttling, OAuth providers, the signup reward."""

    verify_email_url: str = "http://127.0.0.1:8000/verify-email?token={token}"  # the website's pages
    reset_password_url: str = "http://127.0.0.1:8000/reset-password?token={token}"
    verify_token_ttl_s: int = 48 * 3600
    reset_token_ttl_s: int = 3600
    invitation_url: str = "http://127.0.0.1:8000/invitation?token={token}"  # where an invitation mail links
    invitation_ttl_s: int = 7 * 24 * 3600
    allowed_origins: tuple[str, ...] = ("http://127.0.0.1:8000",)
    session_ttl_s: int = 7 * 24 * 3600  # idle lifetime, renewed on use
    session_max_age_s: int = 30 * 24 * 3600  # absolute lifetime
    session_cookie_secure: bool = False
    session_cookie_samesite: str = "lax"
    signin_max_failures: int = 5  # wrong passwords per budget (an address's, or a device cookie's) ...
    signin_failure_window_s: int = 900  # ... per this window
    auth_ip_rate_per_min: int = 30  # sign-in / sign-up / mail requests per client IP
    signup_reward: int = 25_000_000  # micro-credits; 0 disables the reward
    signup_reward_validity_days: int = 30  # 0: the reward never expires
    google: OAuthProviderSettings = OAuthProviderSettings()
    github: OAuthProviderSettings = OAuthProviderSettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str], public_base_url: str) -> AuthSettings:
        samesite = (env.get("SESSION_COOKIE_SAMESITE") or "lax").strip().lower()
        if samesite not in ("lax", "strict"):
            raise SettingsError(f"SESSION_COOKIE_SAMESITE must be lax or strict, got {samesite!r}")
        origins = [origin_of(public_base_url)]
        origins += [origin_of(o.strip()) for o in (env.get("ALLOWED_ORIGINS") or "").split(",") if o.strip()]
        templates = {}
        for name, default in (
            ("VERIFY_EMAIL_URL", f"{public_base_url}/verify-email?token={{token}}"),
            ("RESET_PASSWORD_URL", f"{public_base_url}/reset-password?token={{token}}"),
            ("INVITATION_URL", f"{public_base_url}/invitation?token={{token}}"),
        ):
            templates[name] = env.get(name) or default
            if "{token}" not in templates[name]:
                raise SettingsError(f"{name} must contain the placeholder {{token}}")
        return cls(
            verify_email_url=templates["VERIFY_EMAIL_URL"],
            reset_password_url=templates["RESET_PASSWORD_URL"],
            verify_token_ttl_s=env_int(env, "VERIFY_TOKEN_TTL_S", 48 * 3600, minimum=60),
            reset_token_ttl_s=env_int(env, "RESET_TOKEN_TTL_S", 3600, minimum=60),
            invitation_url=templates["INVITATION_URL"],
            invitation_ttl_s=env_int(env, "INVITATION_TTL_S", 7 * 24 * 3600, minimum=60),
            allowed_origins=tuple(dict.fromkeys(origins)),
            session_ttl_s=env_int(env, "SESSION_TTL_S", 7 * 24 * 3600, minimum=60),
            session_max_age_s=env_int(env, "SESSION_MAX_AGE_S", 30 * 24 * 3600, minimum=60),
            session_cookie_secure=env_bool(env, "SESSION_COOKIE_SECURE", public_base_url.startswith("https://")),
            session_cookie_samesite=samesite,
            signin_max_failures=env_int(env, "SIGNIN_MAX_FAILURES", 5, minimum=1),
            signin_failure_window_s=env_int(env, "SIGNIN_FAILURE_WINDOW_S", 900, minimum=1),
            auth_ip_rate_per_min=env_int(env, "AUTH_IP_RATE_PER_MIN", 30, minimum=1),
            signup_reward=env_credits(env, "SIGNUP_REWARD_CREDITS", "25"),
            signup_reward_validity_days=env_int(env, "SIGNUP_REWARD_VALIDITY_DAYS", 30, minimum=0),
            google=_oauth_provider(env, "GOOGLE", GOOGLE_DEFAULTS, "GOOGLE_USERINFO_URL"),
            github=_oauth_provider(env, "GITHUB", GITHUB_DEFAULTS, "GITHUB_API_URL"),
        )


def _oauth_provider(
    env: Mapping[str, str], prefix: str, defaults: tuple[str, str, str], info_var: str
) -> OAuthProviderSettings:
    return OAuthProviderSettings(
        client_id=env_str(env, f"{prefix}_CLIENT_ID"),
        client_secret=env_str(env, f"{prefix}_CLIENT_SECRET"),
        authorize_url=env.get(f"{prefix}_AUTHORIZE_URL") or defaults[0],
        token_url=env.get(f"{prefix}_TOKEN_URL") or defaults[1],
        userinfo_url=(env.get(info_var) or defaults[2]).rstrip("/"),
    )
