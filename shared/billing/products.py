"""Credit packs: the server-side price list, loaded from a versioned TOML file (``products.toml``).

The file is checked when it is loaded, so a typo in a price stops the process at start-up instead of
selling credits at the wrong price. Orders copy the terms they were bought under (price, credits,
validity), so editing the file never changes an existing order.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from shared.ledger.money import Credits, CreditsFormatError, parse_credits

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CURRENCY = re.compile(r"^[a-z]{3}$")
MAX_VALIDITY_DAYS = 3650


class ProductsError(ValueError):
    pass


class BillingProduct(msgspec.Struct):
    """A credit pack for sale (``price`` in minor units of ``currency``)."""

    id: str
    object: Literal["billing.product"]
    name: str
    description: str
    price: int
    currency: str
    credits: Credits
    validity_days: int | None


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    description: str
    price: int  # minor units of ``currency``
    currency: str
    credits: int  # micro-credits
    validity_days: int | None

    def public(self) -> BillingProduct:
        return BillingProduct(
            id=self.id,
            object="billing.product",
            name=self.name,
            description=self.description,
            price=self.price,
            currency=self.currency,
            credits=Credits(self.credits),
            validity_days=self.validity_days,
        )


class ProductCatalog:
    def __init__(self, products: list[Product]) -> None:
        self._products = {product.id: product for product in products}

    def __iter__(self):
        return iter(self._products.values())

    def __len__(self) -> int:
        return len(self._products)

    def get(self, product_id: str) -> Product | None:
        return self._products.get(product_id)


def load_products(path: Path) -> ProductCatalog:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProductsError(f"cannot read products file {path}: {exc}") from exc
    entries = data.get("products")
    if not isinstance(entries, list):
        raise ProductsError(f"{path}: expected a [[products]] list")
    products: list[Product] = []
    for index, entry in enumerate(entries):
        product = _parse_product(entry, f"{path}: products[{index}]")
        if any(p.id == product.id for p in products):
            raise ProductsError(f"{path}: duplicate product id {product.id!r}")
        products.append(product)
    return ProductCatalog(products)


def _parse_product(entry: Any, where: str) -> Product:
    if not isinstance(entry, dict):
        raise ProductsError(f"{where}: expected a table")
    unknown = set(entry) - {"id", "name", "description", "price", "currency", "credits", "validity_days"}
    if unknown:
        raise ProductsError(f"{where}: unknown keys {sorted(unknown)}")
    product_id = entry.get("id")
    if not isinstance(product_id, str) or not _ID.match(product_id):
        raise ProductsError(f"{where}: id must match {_ID.pattern}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ProductsError(f"{where}: name is required")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ProductsError(f"{where}: description must be a string")
    price = entry.get("price")
    if not isinstance(price, int) or isinstance(price, bool) or price <= 0:
        raise ProductsError(f"{where}: price must be a positive integer in minor units")
    currency = entry.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise ProductsError(f"{where}: currency must be a lower-case ISO 4217 code such as 'usd'")
    raw_credits = entry.get("credits")
    if not isinstance(raw_credits, str | int) or isinstance(raw_credits, bool):
        raise ProductsError(f"{where}: credits must be a decimal string such as '500'")
    try:
        credits = parse_credits(raw_credits)
    except CreditsFormatError as exc:
        raise ProductsError(f"{where}: credits: {exc}") from exc
    if credits <= 0:
        raise ProductsError(f"{where}: credits must be positive")
    validity = entry.get("validity_days")
    if validity is not None and (
        not isinstance(validity, int) or isinstance(validity, bool) or not 1 <= validity <= MAX_VALIDITY_DAYS
    ):
        raise ProductsError(f"{where}: validity_days must be an integer from 1 to {MAX_VALIDITY_DAYS}, or omitted")
    return Product(
        id=product_id,
        name=name.strip(),
        description=description.strip(),
        price=price,
        currency=currency,
        credits=credits,
        validity_days=validity,
    )
