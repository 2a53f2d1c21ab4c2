"""Promo codes and their redemptions (each one a credit lot)."""

from __future__ import annotations

from piccolo.columns import (
    UUID,
    BigInt,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account
from shared.infra.db.schema.ledger import CreditLot


class PromoCode(Table, tablename="promo_codes"):
    id = UUID(primary_key=True)
    code = Varchar(length=64, unique=True)  # upper-cased
    credits = BigInt()
    expires_at = Timestamptz(null=True, default=None)  # after this the code cannot be claimed
    credit_validity_days = Integer(null=True, default=None)  # lifetime of the credits it grants; NULL: no expiry
    max_redemptions = Integer(null=True, default=None)  # NULL: unlimited
    redemptions = Integer(default=0)
    description = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    disabled_at = Timestamptz(null=True, default=None)

    promo_codes_credits_check = Check("credits > 0 AND (credit_validity_days IS NULL OR credit_validity_days > 0)")
    promo_codes_redemptions_check = Check(
        "redemptions >= 0 AND (max_redemptions IS NULL OR (max_redemptions > 0 AND redemptions <= max_redemptions))"
    )


class PromoRedemption(Table, tablename="promo_redemptions"):
    id = UUID(primary_key=True)
    promo_code_id = ForeignKey(PromoCode, null=False, on_delete=OnDelete.restrict)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict, index=True)
    lot_id = ForeignKey(CreditLot, null=True, on_delete=OnDelete.restrict, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    promo_redemptions_unique = Unique(["promo_code_id", "account_id"])
