"""The teams tests run against the accounts tests' API server (real SMTP server, sessions, sign-up), with two
helpers: a team of an owner and a member with a given role, and accepting an invitation from its mail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

import tests.integration.webhooks.conftest as webhooks_conftest
from shared.services import Services
from tests.integration.accounts import conftest as accounts
from tests.integration.accounts.conftest import Person, PersonFactory
from tests.integration.accounts.mailbox import Mailbox

# The accounts tests' fixtures, used here too
accounts_api = accounts.accounts_api
accounts_settings = accounts.accounts_settings
auth_deps = accounts.auth_deps
browser = accounts.browser
mailbox = accounts.mailbox
oauth_provider = accounts.oauth_provider
person = accounts.person
# and the webhook tests' receiver and delivery runtimes
receiver = webhooks_conftest.receiver
clock = webhooks_conftest.clock
make_runtime = webhooks_conftest.make_runtime


@dataclass
class Team:
    owner: Person
    member: Person

    @property
    def account(self) -> str:
        return str(self.owner.account_id)


TeamFactory = Callable[[str], Awaitable[Team]]


async def invite_and_accept(owner: Person, member: Person, mailbox: Mailbox, role: str) -> None:
    """The owner invites the member's address; the member, signed in, accepts from the mail."""
    invited = await owner.browser.post("/v1/account/invitations", json={"email": member.email, "role": role})
    assert invited.status_code == 201, invited.text
    mail = await mailbox.wait(member.email, "You are invited")
    accepted = await member.browser.post("/v1/invitations/accept", json={"token": mail.token()})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == role


@pytest.fixture
def team(person: PersonFactory, mailbox: Mailbox, services: Services) -> TeamFactory:
    async def make(role: str) -> Team:
        owner = await person("owner")
        member = await person(role)
        await invite_and_accept(owner, member, mailbox, role)
        return Team(owner, member)

    return make
