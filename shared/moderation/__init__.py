"""Moderation of what users send (and, per model, of what the models generate), under the operator's policy.

* ``categories``: the categories (OpenAI's moderation taxonomy) and the actions: ``block``, ``flag``, ``allow``;
* ``policy``: the versioned policy file (``policy.toml``, layered with ``MODERATION_POLICY_PATH``);
* ``normalise`` and ``rules``: the operator's word lists and patterns, matched on normalised text;
* ``texts``: the text a request carries;
* ``pipeline``: the checks (rules, then a moderation model through a provider) and ``Moderator.moderate``, the
  one step every route runs before it holds credits;
* ``decisions``: what the checks found, the decision, and ``ContentPolicyViolation`` (400);
* ``events``: moderation events (redacted evidence, purged after ``MODERATION_EVIDENCE_RETENTION_S``), strikes
  that suspend, the ``blocked`` usage record, metrics;
* ``review``: what staff see and do (events, clearing a false positive, lifting a suspension), and appeals;
* ``openai_format``: ``POST /v1/moderations``.
"""
