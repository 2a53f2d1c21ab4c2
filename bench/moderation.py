"""What rules-only moderation adds to a request. Run: ``.venv/bin/python -m bench.moderation``.

The moderation step every route runs before its hold (``Moderator.moderate``: normalisation, the policy's rules,
the decision) on prompts that match nothing (the common case: nothing is recorded), in process, timed per call:

* ``baseline``: the shipped policy, which has no word lists (the step is a few function calls);
* ``words``: an operator's policy of 13 categories x 60 words and phrases (token lookups only);
* ``rules``: the same with 3 regular expressions per category (39 expressions searched in each text).

Prompts: a short chat message (~200 characters), a long one (~2,000), a long one with accents and emoji (the
non-ASCII path: Unicode folding), and an embeddings request of 32 short inputs. Rounds alternate the variants;
reported: the median over rounds of each round's p50 and p99 (min and max alongside), in milliseconds, and what
``words`` and ``rules`` add to ``baseline`` at p50. Results are printed and written to bench/out/moderation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from typing import Any

from bench.common import write_result
from shared.moderation.categories import CATEGORIES
from shared.moderation.events import StrikePolicy, Subject
from shared.moderation.normalise import warm_up
from shared.moderation.pipeline import Moderator, RulesCheck
from shared.moderation.policy import DEFAULT_POLICY, Policy, load_policy, parse_policy

WORDS = ("the", "a", "river", "signal", "model", "of", "and", "light", "to", "city", "engine", "pattern",
         "ocean", "story", "colour", "mountain", "balance", "request", "while", "every", "write", "about",
         "please", "with")  # fmt: skip


def _sentence(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS))
    return " ".join(words).capitalize() + "."


def _made_up(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))


def operator_policy(rng: random.Random, *, patterns: bool = True) -> Policy:
    categories: dict[str, Any] = {}
    for category in CATEGORIES:
        words = [_made_up(rng) for _ in range(50)] + [f"{_made_up(rng)} {_made_up(rng)}" for _ in range(10)]
        expressions = [rf"\b{_made_up(rng)}\w*\b", rf"{_made_up(rng)}\s+{_made_up(rng)}", rf"\d{{3}}-{_made_up(rng)}"]
        categories[category] = {"action": "block" if "/" in category else "flag", "words": words,
                                "patterns": expressions if patterns else []}  # fmt: skip
    return parse_policy({"version": 1, "categories": categories})


def prompts(rng: random.Random) -> dict[str, list[str]]:
    return {
        "chat_200": [_sentence(rng, 200)],
        "chat_2000": ["You are a helpful assistant.", _sentence(rng, 2000)],
        "chat_2000_unicode": [_sentence(rng, 2000).replace("o", "ö").replace(" a ", " à ") + " 🌊🚀 ДЕНЬ"],
        "embeddings_32": [_sentence(rng, 80) for _ in range(32)],
    }


def moderator(policy: Policy) -> Moderator:
    """Nothing matches the prompts, so nothing is recorded: the step needs no database here."""
    none: Any = None
    return Moderator(policy, [RulesCheck(policy)], db=none, redis=none, background=none,
                     strikes=StrikePolicy(0, 60))  # fmt: skip


async def timed(checker: Moderator, texts: list[str], calls: int) -> list[float]:
    subject = Subject(uuid.uuid4(), None, "chat.completion", "bench-model", "text")
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        decision = await checker.moderate(texts, subject)
        samples.append((time.perf_counter() - started) * 1000)
        assert decision.blocked is None and not decision.flagged
    return samples


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per prompt, variant and round")
    args = parser.parse_args()
    rng = random.Random(7)
    warm_up()
    variants = {
        "baseline": moderator(load_policy([DEFAULT_POLICY])),
        "words": moderator(operator_policy(random.Random(7), patterns=False)),
        "rules": moderator(operator_policy(random.Random(7))),
    }
    cases = prompts(rng)
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {case: {v: [] for v in variants} for case in cases}
    for _ in range(args.rounds):
        for case, texts in cases.items():
            for name, checker in variants.items():
                samples = asyncio.run(timed(checker, texts, args.calls))
                rounds[case][name].append({"p50": _percentile(samples, 0.5), "p99": _percentile(samples, 0.99)})
    results: dict[str, Any] = {"load_average": os.getloadavg(), "rounds": args.rounds, "calls": args.calls}
    for case, by_variant in rounds.items():
        summary: dict[str, Any] = {}
        for name, runs in by_variant.items():
            for stat in ("p50", "p99"):
                values = [run[stat] for run in runs]
                summary[f"{name}_{stat}_ms"] = {"median": statistics.median(values), "min": min(values),
                                                "max": max(values)}  # fmt: skip
        for name in ("words", "rules"):
            added = summary[f"{name}_p50_ms"]["median"] - summary["baseline_p50_ms"]["median"]
            summary[f"{name}_adds_p50_ms"] = added
        results[case] = summary
    path = write_result("moderation", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
