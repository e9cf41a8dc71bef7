"""Money rules of CONTRACT §1: exponents, validation, bounds and display."""

from decimal import Decimal

import pytest

from shared_contracts import money
from shared_contracts.money import (
    MAX_AMOUNT,
    MIN_AMOUNT,
    SUPPORTED_CURRENCIES,
    InvalidMoney,
    Money,
    exponent,
    format_amount,
    max_amount,
    money_errors,
    to_decimal,
)

NBSP = "\u00a0"

# ISO 4217 minor units, typed by hand: babel (CLDR) supplies the values at run time and this
# table catches the day CLDR and ISO disagree for a currency we support.
ISO_4217_EXPONENTS = {
    "AUD": 2, "BHD": 3, "CAD": 2, "CHF": 2, "EUR": 2, "GBP": 2, "HKD": 2, "IDR": 2,
    "JPY": 0, "KRW": 0, "KWD": 3, "SGD": 2, "THB": 2, "TWD": 2, "USD": 2, "VND": 0,
}  # fmt: skip


def test_contract_minimum_currencies_are_supported():
    assert {"KRW", "USD", "EUR", "JPY", "GBP", "IDR", "BHD", "KWD"} <= SUPPORTED_CURRENCIES


def test_every_supported_currency_has_a_pinned_exponent():
    assert set(ISO_4217_EXPONENTS) == SUPPORTED_CURRENCIES


@pytest.mark.parametrize(("currency", "expected"), sorted(ISO_4217_EXPONENTS.items()))
def test_exponent_matches_iso_4217(currency, expected):
    assert exponent(currency) == expected


@pytest.mark.parametrize("currency", ["krw", "Usd", "XYZ", "XXX", "", "USDD", " USD"])
def test_exponent_rejects_unsupported(currency):
    # babel answers 2 for any unknown code; we must not.
    with pytest.raises(InvalidMoney):
        exponent(currency)


def test_bounds():
    assert (MIN_AMOUNT, MAX_AMOUNT) == (1, 99_999_999)


@pytest.mark.parametrize("currency", sorted(SUPPORTED_CURRENCIES))
def test_max_amount_never_exceeds_contract(currency):
    assert MIN_AMOUNT < max_amount(currency) <= MAX_AMOUNT


def test_per_currency_maximum_is_enforced(monkeypatch):
    monkeypatch.setitem(money.MAX_AMOUNT_BY_CURRENCY, "BHD", 5_000_000)
    assert max_amount("BHD") == 5_000_000
    assert money_errors(5_000_000, "BHD") == {}
    assert set(money_errors(5_000_001, "BHD")) == {"amount"}
    assert money_errors(5_000_001, "KWD") == {}


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(1, "KRW"), (30000, "KRW"), (1999, "USD"), (1250, "BHD"), (99_999_999, "JPY")],
)
def test_valid_money_has_no_errors(amount, currency):
    assert money_errors(amount, currency) == {}


@pytest.mark.parametrize(
    "amount", [True, False, 19.99, 1000.0, "1000", None, Decimal(1000), [1000], {"v": 1}]
)
def test_amount_must_be_a_json_integer(amount):
    assert set(money_errors(amount, "USD")) == {"amount"}


@pytest.mark.parametrize("amount", [0, -1, -30000, MAX_AMOUNT + 1, 10**20])
def test_amount_out_of_range(amount):
    errors = money_errors(amount, "KRW")
    assert set(errors) == {"amount"}
    assert "between 1 and 99999999" in errors["amount"][0]


@pytest.mark.parametrize("currency", ["krw", "usd", "Eur", "XYZ", "", None, 840, b"USD"])
def test_currency_must_be_upper_case_and_supported(currency):
    assert set(money_errors(100, currency)) == {"currency"}


def test_both_fields_reported_together():
    assert set(money_errors(1.5, "usd")) == {"amount", "currency"}


def test_money_validates_on_construction():
    with pytest.raises(InvalidMoney) as excinfo:
        Money(amount=True, currency="krw")  # type: ignore[arg-type]
    assert set(excinfo.value.errors) == {"amount", "currency"}
    assert isinstance(excinfo.value, ValueError)


def test_money_is_frozen_and_comparable():
    price = Money(30000, "KRW")
    assert price == Money(30000, "KRW")
    assert price != Money(30000, "JPY")
    with pytest.raises(AttributeError):
        price.amount = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(1250, "BHD", Decimal("1.250")), (1999, "USD", Decimal("19.99")), (30000, "KRW", 30000)],
)
def test_to_decimal_is_exact(amount, currency, expected):
    result = to_decimal(amount, currency)
    assert result == expected
    assert isinstance(result, Decimal)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (30000, "KRW", "₩30,000"),
        (1999, "USD", "$19.99"),
        (1250, "BHD", f"BHD{NBSP}1.250"),
        (1, "KWD", f"KWD{NBSP}0.001"),
        (150000, "JPY", "¥150,000"),
        (99_999_999, "USD", "$999,999.99"),
        (5, "EUR", "€0.05"),
    ],
)
def test_format_amount_en_us(amount, currency, expected):
    assert format_amount(amount, currency) == expected


def test_format_amount_matches_contract_example_for_bhd():
    # The brief writes "BHD 1.250"; CLDR puts a no-break space there so the code never wraps.
    assert format_amount(1250, "BHD").replace(NBSP, " ") == "BHD 1.250"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (30000, "KRW", "ko_KR", "₩30,000"),
        (1999, "EUR", "de_DE", f"19,99{NBSP}€"),
        (1250, "BHD", "de_DE", f"1,250{NBSP}BHD"),
    ],
)
def test_format_amount_other_locales(amount, currency, locale, expected):
    assert format_amount(amount, currency, locale) == expected


def test_money_format_delegates():
    assert Money(1999, "USD").format() == "$19.99"


@pytest.mark.parametrize(("amount", "currency"), [(19.99, "USD"), (True, "USD"), (100, "usd")])
def test_format_amount_rejects_invalid_input(amount, currency):
    with pytest.raises(InvalidMoney):
        format_amount(amount, currency)
