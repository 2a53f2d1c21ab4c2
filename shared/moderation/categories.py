"""The moderation categories (OpenAI's moderation taxonomy, so a moderation model's verdicts map one to one) and
the actions an operator gives each of them."""

from __future__ import annotations

CATEGORIES = (
    "sexual",
    "sexual/minors",
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "violence",
    "violence/graphic",
)

BLOCK, FLAG, ALLOW = "block", "flag", "allow"
ACTIONS = (BLOCK, FLAG, ALLOW)

# What a moderation event records (the past tense of the action taken).
BLOCKED, FLAGGED = "blocked", "flagged"

# Where a check's verdict came from
RULES, MODEL, MODEL_ERROR = "rules", "model", "model_error"  # model_error: no verdict, the category fails closed

# Llama Guard 3's hazard codes (MLCommons taxonomy) and the categories they count as.
LLAMA_GUARD_CODES = {
    "S1": "violence",  # violent crimes
    "S2": "illicit",  # non-violent crimes
    "S3": "sexual",  # sex-related crimes
    "S4": "sexual/minors",  # child sexual exploitation
    "S5": "harassment",  # defamation
    "S6": "illicit",  # specialized advice
    "S7": "harassment",  # privacy
    "S8": "illicit",  # intellectual property
    "S9": "illicit/violent",  # indiscriminate weapons
    "S10": "hate",
    "S11": "self-harm",  # suicide and self-harm
    "S12": "sexual",  # sexual content
    "S13": "illicit",  # elections
    "S14": "illicit",  # code interpreter abuse
}
