"""The credit pack list: the shipped file, and the mistakes the loader refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.billing.products import ProductsError, load_products
from shared.settings import DEFAULT_PRODUCTS, Settings
from tests.simulators.stripe import decode_form

VALID = """
[[products]]
id = "pack"
name = "A pack"
price = 999
currency = "eur"
credits = "12.5"
validity_days = 30
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "products.toml"
    path.write_text(text)
    return path


def test_the_shipped_products_load() -> None:
    products = load_products(DEFAULT_PRODUCTS)
    assert [p.id for p in products] == ["starter", "pro", "studio"]
    starter = products.get("starter")
    assert starter is not None
    assert (starter.price, starter.currency, starter.credits, starter.validity_days) == (500, "usd", 500_000_000, 365)
    assert products.get("nope") is None


def test_a_valid_file(tmp_path: Path) -> None:
    product = load_products(write(tmp_path, VALID)).get("pack")
    assert product is not None
    assert (product.price, product.currency, product.credits, product.validity_days) == (999, "eur", 12_500_000, 30)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("price = 999", "price = 9.99"), "price must be a positive integer"),
        (("price = 999", "price = 0"), "price must be a positive integer"),
        (('currency = "eur"', 'currency = "EUR"'), "currency must be"),
        (('credits = "12.5"', "credits = 12.5"), "credits must be a decimal string"),
        (('credits = "12.5"', 'credits = "0.0000001"'), "at most 6 decimal places"),
        (('credits = "12.5"', 'credits = "0"'), "credits must be positive"),
        (("validity_days = 30", "validity_days = 0"), "validity_days must be"),
        (('id = "pack"', 'id = "Pack!"'), "id must match"),
        (('name = "A pack"', "price_id = 3"), "unknown keys"),
    ],
)
def test_mistakes_are_refused(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    with pytest.raises(ProductsError, match=message):
        load_products(write(tmp_path, VALID.replace(*change)))


def test_duplicates_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ProductsError, match="duplicate product id"):
        load_products(write(tmp_path, VALID + VALID))
    with pytest.raises(ProductsError, match="cannot read"):
        load_products(tmp_path / "missing.toml")


def test_settings_for_stripe() -> None:
    settings = Settings.from_env({"PUBLIC_BASE_URL": "https://conduit.example.com/"})
    assert settings.stripe_secret_key is None
    assert settings.stripe_api_base == "https://api.stripe.com"
    assert (
        settings.resolved_checkout_success_url == "https://conduit.example.com/dashboard/billing/return?result=success"
    )
    assert settings.resolved_checkout_cancel_url == "https://conduit.example.com/dashboard/billing/return?result=cancel"
    custom = Settings.from_env({"CHECKOUT_SUCCESS_URL": "https://app.example.com/paid/{ORDER_ID}",
                                "STRIPE_API_BASE": "http://127.0.0.1:12111/"})  # fmt: skip
    assert custom.resolved_checkout_success_url == "https://app.example.com/paid/{ORDER_ID}"
    assert custom.stripe_api_base == "http://127.0.0.1:12111"


def test_the_simulator_reads_stripe_form_encoding() -> None:
    body = (
        "mode=payment&metadata[order_id]=o1&line_items[0][quantity]=1"
        "&line_items[0][price_data][currency]=usd&line_items[1][quantity]=2"
    )
    assert decode_form(body) == {
        "mode": "payment",
        "metadata": {"order_id": "o1"},
        "line_items": [{"quantity": "1", "price_data": {"currency": "usd"}}, {"quantity": "2"}],
    }
