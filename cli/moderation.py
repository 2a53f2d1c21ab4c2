"""``conduit moderation check TEXT…``: what the moderation policy (``MODERATION_POLICY_PATH`` over the shipped
file) makes of each text, with the rules only (offline: no database, no moderation model). For operators writing
their word lists and patterns."""

from __future__ import annotations

import argparse
import json
from typing import Any

from shared.moderation.policy import load_policy
from shared.moderation.rules import RuleSet
from shared.settings import Settings


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Prints one JSON line per text: the categories its rules match and the action each has; exits 1 when any
    text would be blocked."""
    policy = load_policy(settings.moderation.policy_paths)
    rules = RuleSet(policy)
    blocked = False
    for text in args.texts:
        matched = {match.category: policy.action(match.category) for match in rules.match([text])}
        blocked = blocked or "block" in matched.values()
        line: dict[str, Any] = {"text": text, "categories": matched, "policy_version": policy.version}
        print(json.dumps(line, ensure_ascii=False))
    return 1 if blocked else 0


def add_moderation_commands(sub: Any) -> None:
    moderation = sub.add_parser("moderation", help="the moderation policy").add_subparsers(dest="action", required=True)
    check = moderation.add_parser("check", help="match texts against the policy's rules (offline)")
    check.add_argument("texts", nargs="+", metavar="TEXT")
    check.set_defaults(handler=cmd_check)
