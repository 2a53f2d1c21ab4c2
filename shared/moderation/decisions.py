"""What the checks found and what the policy makes of it: a hit per category and text, the decision on a
request (blocked by one category, flagged by others), and the error a blocked request is answered with."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.infra.errors import ConduitError
from shared.moderation.categories import ALLOW, BLOCK, FLAG, MODEL_ERROR
from shared.moderation.policy import Policy


class ContentPolicyViolation(ConduitError):
    """A request (or an output) refused by the operator's moderation policy: ``400`` naming the category, never
    the rule that matched."""

    code = "content_policy_violation"

    def __init__(self, category: str, *, output: bool = False) -> None:
        what = "the generated output was" if output else "this request was"
        super().__init__(f"{what} refused under this server's content policy (category: {category})")
        self.category = category


@dataclass(frozen=True, slots=True)
class Hit:
    """A category found in one text, by one check (``rules``, ``model``, or ``model_error``: the model could not
    answer and the category fails closed)."""

    category: str
    checker: str
    text_index: int


@dataclass(slots=True)
class TextResult:
    """One text's categories (first hit of each) and the moderation model's scores, when it was asked."""

    hits: dict[str, Hit] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def add(self, hit: Hit) -> None:
        self.hits.setdefault(hit.category, hit)


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's decision on a request: the blocking hit (the first category, in catalogue order), if any, and
    the hits only flagged."""

    blocked: Hit | None
    flagged: tuple[Hit, ...]

    @classmethod
    def of(cls, policy: Policy, results: list[TextResult]) -> Decision:
        blocked: Hit | None = None
        flagged: dict[str, Hit] = {}
        for result in results:
            for category, hit in result.hits.items():
                action = policy.action(category)
                if hit.checker == MODEL_ERROR and action != ALLOW:
                    action = BLOCK  # the category fails closed: no verdict, no service
                if action == BLOCK and blocked is None:
                    blocked = hit
                elif action == FLAG:
                    flagged.setdefault(category, hit)
        return cls(blocked, tuple(flagged.values()))
