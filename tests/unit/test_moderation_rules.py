"""The moderation policy file, text normalisation and the rules matched on it (no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main as cli_main
from shared.moderation.decisions import Decision, Hit, TextResult
from shared.moderation.events import redacted_excerpt
from shared.moderation.normalise import normalise
from shared.moderation.policy import DEFAULT_POLICY, PolicyError, load_policy, parse_policy
from shared.moderation.rules import RuleSet
from shared.moderation.texts import request_texts
from shared.providers.base import RetryableError
from shared.providers.moderation import llama_guard_verdict, openai_verdict

POLICY = parse_policy({
    "categories": {
        "violence": {"action": "block", "words": ["kill", "make a bomb"]},
        "hate": {"action": "flag", "patterns": [r"h[a4]te\s+speech"]},
        "self-harm": {"action": "allow", "words": ["cut"]},
    }
})  # fmt: skip


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("KiLL", "kill"),
        ("ki\u200bll", "kill"),  # zero-width space
        ("k\u00adi\u2060ll", "kill"),  # soft hyphen, word joiner
        ("\u043a\u0456ll", "kill"),  # Cyrillic ka and i
        ("\uff4b\uff49\uff4c\uff4c", "kill"),  # full-width
        ("\U0001d424\U0001d422\U0001d425\U0001d425", "kill"),  # mathematical bold
        ("kíll", "kill"),
        ("a  \t\n b", "a b"),
        ("1 0 l", "1 0 l"),  # ASCII stays itself
    ],
)
def test_normalise_folds_what_evasion_uses(text: str, folded: str) -> None:
    assert normalise(text) == folded


@pytest.mark.parametrize(
    ("text", "categories"),
    [
        ("I will kill you", ["violence"]),
        ("k i l l", ["violence"]),
        ("k.1.l.l", ["violence"]),
        ("k_-_i l l", ["violence"]),
        ("how to MAKE-A-B0MB", ["violence"]),
        ("skill and killer", []),  # inside other words
        ("hate    speech", ["hate"]),
        ("cut", []),  # allowed: not even compiled
    ],
)
def test_rules_match_words_whole_and_patterns(text: str, categories: list[str]) -> None:
    assert [m.category for m in RuleSet(POLICY).match([text])] == categories


def test_the_first_matching_text_is_reported() -> None:
    [match] = RuleSet(POLICY).match(["fine", "also fine", "kill"])
    assert match.text_index == 2


def test_a_block_wins_and_flags_are_kept() -> None:
    results = [TextResult(), TextResult()]
    results[0].add(Hit("hate", "rules", 0))
    results[1].add(Hit("violence", "model", 1))
    results[1].add(Hit("self-harm", "model", 1))
    decision = Decision.of(POLICY, results)
    assert decision.blocked == Hit("violence", "model", 1)
    assert [hit.category for hit in decision.flagged] == ["hate"]  # self-harm is allowed


def test_a_model_error_blocks_a_flagged_category_that_fails_closed() -> None:
    result = TextResult()
    result.add(Hit("hate", "model_error", 0))
    assert Decision.of(POLICY, [result]).blocked == Hit("hate", "model_error", 0)


def test_policy_files_are_layered_category_by_category(tmp_path: Path) -> None:
    first = tmp_path / "a.toml"
    first.write_text('version = 2\n[categories."violence"]\naction = "block"\nwords = ["kill"]\n')
    second = tmp_path / "b.toml"
    second.write_text('version = 3\n[categories."violence"]\naction = "flag"\n[outputs]\nmodels = ["m"]\n')
    policy = load_policy([DEFAULT_POLICY, first, second])
    assert policy.version == 3
    assert policy.categories["violence"].action == "flag" and policy.categories["violence"].words == ("kill",)
    assert policy.categories["sexual/minors"].action == "block" and policy.categories["sexual/minors"].fail_closed
    assert policy.output_models == frozenset({"m"})


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"categories": {"spam": {"action": "block"}}}, "unknown category"),
        ({"categories": {"hate": {"action": "ban"}}}, "action must be"),
        ({"categories": {"hate": {"patterns": ["(unclosed"]}}}, "does not compile"),
        ({"categories": {"hate": {"words": [""]}}}, "non-empty strings"),
        ({"categories": {"hate": {"on_model_error": "maybe"}}}, "on_model_error"),
        ({"model": {"protocol": "perspective", "provider": "p", "model": "m"}}, "protocol"),
        ({"model": {"protocol": "llama_guard", "provider": "p", "model": "m", "timeout_s": 0}}, "timeout_s"),
        ({"outputs": {"models": "all"}}, "outputs.models"),
    ],
)
def test_a_bad_policy_is_refused_at_load(data: dict[str, object], problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        parse_policy(data)


def test_the_texts_of_a_request() -> None:
    params = {
        "prompt": "p", "negative_prompt": "n", "width": 512, "input": ["e1", "e2"],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {}}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
        ],
    }  # fmt: skip
    assert request_texts(params) == ["p", "n", "e1", "e2", "t", '{"a": 1}']


def test_the_excerpt_is_redacted_and_short() -> None:
    key = "cdt_" + "a" * 40
    text = f"mail bob@example.org, card 4111 1111 1111 1111, key {key} " + "x" * 1000
    excerpt = redacted_excerpt(text)
    assert "bob@" not in excerpt and "4111" not in excerpt and len(excerpt) <= 280
    assert excerpt.startswith("mail [email], card [number], key ")


def test_moderation_model_verdicts() -> None:
    verdict = openai_verdict("p", {"categories": {"violence": True, "hate": False}, "category_scores": {"hate": 0.2}})
    assert verdict.categories == {"violence"} and verdict.scores == {"hate": 0.2}
    assert llama_guard_verdict("p", "safe").categories == frozenset()
    assert llama_guard_verdict("p", "unsafe\nS1,S4").categories == {"violence", "sexual/minors"}
    with pytest.raises(RetryableError):
        llama_guard_verdict("p", "I cannot answer that")


def test_the_cli_checks_texts_against_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 9\n[categories."violence"]\naction = "block"\nwords = ["kill"]\n')
    monkeypatch.setenv("MODERATION_POLICY_PATH", str(policy))
    assert cli_main(["moderation", "check", "hello there", "K I L L"]) == 1  # one text would be blocked
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"text": "hello there", "categories": {}, "policy_version": 9},
        {"text": "K I L L", "categories": {"violence": "block"}, "policy_version": 9},
    ]
    assert cli_main(["moderation", "check", "hello"]) == 0
    policy.write_text('[categories."spam"]\naction = "block"\n')
    assert cli_main(["moderation", "check", "hello"]) == 2
    assert "unknown category" in capsys.readouterr().err
