"""Members of an account: roles on every domain, invitations, removal, switching accounts."""

from __future__ import annotations

import uuid

import pytest

from shared.services import Services
from tests.integration.accounts.conftest import PASSWORD, BrowserFactory, PersonFactory, new_email
from tests.integration.accounts.mailbox import Mailbox
from tests.integration.teams.conftest import TeamFactory

NOWHERE = str(uuid.uuid4())
# One representative route per domain, and the roles that may use it (the others get 403 role_forbidden).
ROUTES: list[tuple[str, str, dict[str, object] | None, set[str]]] = [
    ("GET", "/v1/account", None, {"owner", "admin", "developer", "billing", "viewer"}),
    ("GET", "/v1/usage", None, {"owner", "admin", "developer", "billing", "viewer"}),
    ("GET", "/v1/keys", None, {"owner", "admin", "developer", "billing", "viewer"}),
    ("POST", "/v1/keys", {"name": "from a member"}, {"owner", "admin", "developer"}),
    ("POST", f"/v1/tasks/{NOWHERE}/cancel", None, {"owner", "admin", "developer"}),
    ("POST", "/v1/billing/checkout", {"product": "starter"}, {"owner", "admin", "billing"}),
    ("GET", "/v1/billing/orders", None, {"owner", "admin", "billing", "viewer"}),
    ("POST", "/v1/account/invitations", {"email": "someone@example.com"}, {"owner", "admin"}),
    ("GET", "/v1/account/audit", None, {"owner", "admin"}),
    ("DELETE", f"/v1/webhooks/endpoints/{NOWHERE}", None, {"owner", "admin", "developer"}),
    ("POST", f"/v1/support/tickets/{NOWHERE}/close", None, {"owner", "admin", "developer", "billing"}),
    ("GET", "/v1/account/members", None, {"owner", "admin", "developer", "billing", "viewer"}),
]


@pytest.mark.parametrize("role", ["admin", "developer", "billing", "viewer"])
async def test_every_role_on_a_route_of_each_domain(team: TeamFactory, role: str) -> None:
    t = await team(role)
    headers = {"X-Conduit-Account": t.account}
    for method, path, body, roles in ROUTES:
        response = await t.member.browser.request(method, path, json=body, headers=headers)
        if role in roles:
            assert response.status_code != 403, f"{role} {method} {path}: {response.text}"
        else:
            assert response.status_code == 403, f"{role} {method} {path}: {response.text}"
            error = response.json()["error"]
            assert error["code"] == "role_forbidden"
            assert role in error["message"]
    # The owner can do everything listed.
    for method, path, body, _ in ROUTES:
        response = await t.owner.browser.request(method, path, json=body)
        assert response.status_code != 403, f"owner {method} {path}: {response.text}"


async def test_a_new_person_accepts_from_the_mail_and_sees_the_shared_balance(
    person: PersonFactory, browser: BrowserFactory, mailbox: Mailbox, services: Services
) -> None:
    owner = await person("owner")
    email = new_email("teammate")
    invited = await owner.browser.post("/v1/account/invitations", json={"email": email, "role": "developer"})
    assert invited.status_code == 201, invited.text
    assert invited.json()["status"] == "pending"
    mail = await mailbox.wait(email, "You are invited")
    assert owner.email in mail.text and "developer" in mail.text
    teammate = browser()
    shown = await teammate.get("/v1/invitations/lookup", params={"token": mail.token()})
    assert shown.status_code == 200 and shown.json()["email"] == email
    no_password = await teammate.post("/v1/invitations/accept", json={"token": mail.token(), "age_confirmed": True})
    assert no_password.status_code == 400 and no_password.json()["error"]["param"] == "password"
    accepted = await teammate.post(
        "/v1/invitations/accept", json={"token": mail.token(), "password": PASSWORD, "age_confirmed": True}
    )
    assert accepted.status_code == 200, accepted.text
    teammate.csrf = accepted.json()["csrf_token"]
    shared = (await teammate.get("/v1/account")).json()
    own = (await owner.browser.get("/v1/account")).json()
    assert shared["id"] == str(owner.account_id)
    assert shared["balance"] == own["balance"] and own["balance"]["available"] == 25
    # The new person can also sign in with the password they chose, and the link is spent.
    assert (await browser().signin(email)).status_code == 200
    again = await browser().post("/v1/invitations/accept", json={"token": mail.token(), "password": PASSWORD,
                                                                   "age_confirmed": True})  # fmt: skip
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_invitation"
    members = (await owner.browser.get("/v1/account/members")).json()["data"]
    assert {(m["email"], m["role"]) for m in members} == {(owner.email, "owner"), (email, "developer")}
    actions = [e["action"] for e in (await owner.browser.get("/v1/account/audit")).json()["data"]]
    assert actions[:2] == ["member.join", "member.invite"]


async def test_expired_and_revoked_invitations_do_not_work(
    person: PersonFactory, mailbox: Mailbox, services: Services
) -> None:
    owner = await person("owner")
    invitee = await person("invitee")
    first = await owner.browser.post("/v1/account/invitations", json={"email": invitee.email, "role": "viewer"})
    mail = await mailbox.wait(invitee.email, "You are invited")
    revoked = await owner.browser.post(f"/v1/account/invitations/{first.json()['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    refused = await invitee.browser.post("/v1/invitations/accept", json={"token": mail.token()})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_invitation"

    second = await owner.browser.post("/v1/account/invitations", json={"email": invitee.email, "role": "viewer"})
    mail = await mailbox.wait(invitee.email, "You are invited", count=2)
    await services.db.execute(
        "UPDATE account_invitations SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(second.json()["id"]),
    )
    expired = await invitee.browser.post("/v1/invitations/accept", json={"token": mail.token()})
    assert expired.status_code == 400 and expired.json()["error"]["code"] == "invalid_invitation"
    assert (await invitee.browser.get("/v1/account", headers={"X-Conduit-Account": str(owner.account_id)})
            ).status_code == 404  # fmt: skip
    # Another account's invitation cannot be revoked from here: 404.
    other = await person("other")
    assert (await other.browser.post(f"/v1/account/invitations/{second.json()['id']}/revoke")).status_code == 404


async def test_an_invitation_for_another_address_is_refused(
    person: PersonFactory, browser: BrowserFactory, mailbox: Mailbox
) -> None:
    owner = await person("owner")
    invitee = await person("invitee")
    bystander = await person("bystander")
    await owner.browser.post("/v1/account/invitations", json={"email": invitee.email, "role": "viewer"})
    mail = await mailbox.wait(invitee.email, "You are invited")
    refused = await bystander.browser.post("/v1/invitations/accept", json={"token": mail.token()})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "invitation_for_another_address"
    signed_out = await browser().post("/v1/invitations/accept", json={"token": mail.token()})
    assert signed_out.status_code == 401 and signed_out.json()["error"]["code"] == "sign_in_to_accept"


async def test_removing_a_member_ends_their_sessions_on_the_account_at_once(
    team: TeamFactory, browser: BrowserFactory, services: Services
) -> None:
    t = await team("developer")
    made = await t.member.browser.post("/v1/keys", json={"name": "the member's"})  # acting on the team (accepted)
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["created_by"] == str(t.member.account_id) and key["role"] == "developer"
    assert (await t.member.browser.get("/v1/account")).json()["id"] == t.account
    removed = await t.owner.browser.request("DELETE", f"/v1/account/members/{t.member.account_id}")
    assert removed.status_code == 204, removed.text
    after = await t.member.browser.get("/v1/account")
    assert after.status_code == 401 and after.json()["error"]["code"] == "session_expired"
    assert await services.sessions.list(t.member.account_id) == []  # the session acting on the team is gone
    # Their key stays the account's, and still works.
    used = await browser().get("/v1/account", headers={"Authorization": f"Bearer {key['secret']}"})
    assert used.status_code == 200 and used.json()["id"] == t.account
    keys = (await t.owner.browser.get("/v1/keys")).json()["data"]
    assert key["id"] in {k["id"] for k in keys}
    audit = (await t.owner.browser.get("/v1/account/audit", params={"action": "member."})).json()["data"]
    assert audit[0]["action"] == "member.remove" and audit[0]["actor"] == t.owner.email


async def test_one_person_in_two_accounts_switches_between_them(team: TeamFactory, person: PersonFactory) -> None:
    t = await team("viewer")
    member = t.member.browser
    accounts = (await member.get("/v1/accounts")).json()["data"]
    assert [(a["account_id"], a["role"]) for a in accounts] == [
        (str(t.member.account_id), "owner"),
        (t.account, "viewer"),
    ]
    assert [a["current"] for a in accounts] == [False, True]  # accepting switched the session to the team
    back = await member.post("/v1/accounts/switch", json={"account_id": str(t.member.account_id)})
    assert back.status_code == 200
    assert (await member.get("/v1/account")).json()["id"] == str(t.member.account_id)
    # Their own account: they are its owner and may create keys; the header acts on the team for one request.
    assert (await member.post("/v1/keys", json={"name": "mine"})).status_code == 201
    on_team = await member.post("/v1/keys", json={"name": "theirs"}, headers={"X-Conduit-Account": t.account})
    assert on_team.status_code == 403 and on_team.json()["error"]["code"] == "role_forbidden"
    stranger = await person("stranger")
    for header in (str(stranger.account_id), "not-an-id"):
        response = await member.get("/v1/account", headers={"X-Conduit-Account": header})
        assert response.status_code == 404 and response.json()["error"]["code"] == "account_not_found"
    switch = await member.post("/v1/accounts/switch", json={"account_id": str(stranger.account_id)})
    assert switch.status_code == 404
    # Another account's objects stay 404, even for its member acting on their own account.
    owners_key = (await t.owner.browser.post("/v1/keys", json={"name": "owner's"})).json()
    assert (await member.get(f"/v1/keys/{owners_key['id']}")).status_code == 404
    assert (await member.get(f"/v1/keys/{owners_key['id']}", headers={"X-Conduit-Account": t.account})
            ).status_code == 200  # fmt: skip


async def test_roles_change_with_an_owner_always_left(team: TeamFactory) -> None:
    t = await team("admin")
    admin = t.member.browser
    headers = {"X-Conduit-Account": t.account}
    # An admin cannot make or unmake owners.
    make_owner = await admin.request("PATCH", f"/v1/account/members/{t.member.account_id}", json={"role": "owner"},
                                     headers=headers)  # fmt: skip
    assert make_owner.status_code == 403 and make_owner.json()["error"]["code"] == "owner_required"
    demote = await admin.request("PATCH", f"/v1/account/members/{t.owner.account_id}", json={"role": "viewer"},
                                 headers=headers)  # fmt: skip
    assert demote.status_code == 403
    # The only owner cannot step down or leave; after handing over ownership, they can.
    owner = t.owner.browser
    alone = await owner.request("PATCH", f"/v1/account/members/{t.owner.account_id}", json={"role": "admin"})
    assert alone.status_code == 409 and alone.json()["error"]["code"] == "last_owner"
    assert (await owner.post("/v1/account/leave")).status_code == 409
    bad = await owner.request("PATCH", f"/v1/account/members/{t.member.account_id}", json={"role": "boss"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "role"
    handed = await owner.request("PATCH", f"/v1/account/members/{t.member.account_id}", json={"role": "owner"})
    assert handed.status_code == 200 and handed.json()["role"] == "owner"
    stepped = await owner.request("PATCH", f"/v1/account/members/{t.owner.account_id}", json={"role": "viewer"})
    assert stepped.status_code == 200
    assert (await owner.post("/v1/keys", json={"name": "x"})).status_code == 403
    audit = (await admin.get("/v1/account/audit", headers=headers)).json()["data"]
    assert [(e["action"], e["before"], e["after"]) for e in audit[:2]] == [
        ("member.role", {"role": "owner"}, {"role": "viewer"}),
        ("member.role", {"role": "admin"}, {"role": "owner"}),
    ]


async def test_the_only_owner_of_another_account_cannot_delete_theirs(team: TeamFactory) -> None:
    t = await team("developer")
    headers = {"X-Conduit-Account": t.account}
    owner, member = t.owner.browser, t.member.browser
    promoted = await owner.request("PATCH", f"/v1/account/members/{t.member.account_id}", json={"role": "owner"})
    assert promoted.status_code == 200, promoted.text
    demoted = await member.request("PATCH", f"/v1/account/members/{t.owner.account_id}", json={"role": "viewer"},
                                   headers=headers)  # fmt: skip
    assert demoted.status_code == 200, demoted.text
    # The member is now the only owner of the first person's account: deleting their own would leave it ownerless.
    own = {"X-Conduit-Account": str(t.member.account_id)}  # accepting the invitation switched them to the team
    refused = await member.request("DELETE", "/v1/account", json={"password": t.member.password}, headers=own)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "last_owner" and error["param"] == "account_id" and t.account in error["message"]
    assert (await member.get("/v1/account")).status_code == 200  # nothing was erased
    members = (await owner.get("/v1/account/members")).json()["data"]
    assert {m["email"]: m["role"] for m in members} == {t.owner.email: "viewer", t.member.email: "owner"}
    # Once the account has another owner, the deletion goes through and the account keeps its owner.
    restored = await member.request("PATCH", f"/v1/account/members/{t.owner.account_id}", json={"role": "owner"},
                                    headers=headers)  # fmt: skip
    assert restored.status_code == 200, restored.text
    deleted = await member.request("DELETE", "/v1/account", json={"password": t.member.password}, headers=own)
    assert deleted.status_code == 204, deleted.text
    members = (await owner.get("/v1/account/members")).json()["data"]
    assert [(m["email"], m["role"]) for m in members] == [(t.owner.email, "owner")]
