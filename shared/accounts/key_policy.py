"""Per-key limits set by the owner: which models a key may call, and how much it may spend in total.

* ``check_model_allowed(principal, model_id)`` before anything else, wherever a key asks for a model
  (``POST /v1/tasks``, the OpenAI-compatible routes);
* the spend cap is a movement of credits on the key, so it lives with the ledger
  (``shared.ledger.spend_caps``): reserved in the transaction that places a hold, settled with the hold.
"""

from __future__ import annotations

from shared.accounts.keys import Principal
from shared.infra.errors import PermissionDenied


def check_model_allowed(principal: Principal, model_id: str) -> None:
    if principal.allowed_models is not None and model_id not in principal.allowed_models:
        raise PermissionDenied(
            f"this API key may not use model {model_id!r}; it is limited to: "
            + (", ".join(sorted(principal.allowed_models)) or "no models"),
            code="model_not_allowed",
            param="model",
        )
