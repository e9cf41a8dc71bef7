"""Money on the wire (CONTRACT §1): supported currencies, minor-unit exponents, bounds, display."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from babel.numbers import format_currency, get_currency_precision, get_currency_symbol

#: ISO 4217 codes a checkout may be priced in. Adding one is a contract change for both sides.
SUPPORTED_CURRENCIES: Final = frozenset(
    {
        "AUD", "BHD", "CAD", "CHF", "EUR", "GBP", "HKD", "IDR",
        "JPY", "KRW", "KWD", "SGD", "THB", "TWD", "USD", "VND",
    }
)  # fmt: skip

#: Minor-unit exponent per currency, from CLDR via babel rather than a hand-typed table;
#: tests pin the values against ISO 4217 so a CLDR change cannot silently move a decimal point.
EXPONENTS: Final[Mapping[str, int]] = MappingProxyType(
    {code: get_currency_precision(code) for code in sorted(SUPPORTED_CURRENCIES)}
)

MIN_AMOUNT: Final = 1
MAX_AMOUNT: Final = 99_999_999

#: Per-currency maxima, in minor units, only where lower than ``MAX_AMOUNT``.
#:
#: Empty on purpose: the 8-digit ceiling is already at most about USD 1M in every supported
#: currency (BHD/KWD: 99,999.999, about USD 265k/325k; JPY about 650k; KRW about 70k), which
#: is well above any ticket. The ceiling binds from the other side for weak minor units:
#: IDR tops out at IDR 999,999.99 and VND at VND 99,999,999 (both a few thousand USD or
#: less); raising them would need a contract change, not an entry here.
MAX_AMOUNT_BY_CURRENCY: Final[Mapping[str, int]] = {}

_NBSP: Final = "\u00a0"


class InvalidMoney(ValueError):
    """An amount or currency that breaks CONTRACT §1; ``errors`` maps field -> messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors: dict[str, list[str]] = {field: list(msgs) for field, msgs in errors.items()}
        super().__init__(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in self.errors.items())
        )


def _currency_errors(currency: object) -> list[str]:
    if not isinstance(currency, str):
        return ["Must be a string."]
    if currency not in SUPPORTED_CURRENCIES:
        supported = ", ".join(sorted(SUPPORTED_CURRENCIES))
        return [f"Unsupported currency {currency!r}; use an upper-case code from: {supported}."]
    return []


def exponent(currency: str) -> int:
    """Digits after the decimal point of ``currency``'s minor unit (KRW 0, USD 2, BHD 3)."""
    if problems := _currency_errors(currency):
        raise InvalidMoney({"currency": problems})
    return EXPONENTS[currency]


def max_amount(currency: str) -> int:
    """The largest amount, in minor units, accepted for ``currency``."""
    exponent(currency)  # rejects unsupported codes
    return MAX_AMOUNT_BY_CURRENCY.get(currency, MAX_AMOUNT)


def money_errors(amount: object, currency: object) -> dict[str, list[str]]:
    """Check a wire ``amount``/``currency`` pair; returns field -> messages, empty when valid."""
    errors: dict[str, list[str]] = {}
    if currency_problems := _currency_errors(currency):
        errors["currency"] = currency_problems
    # bool is an int subclass, and JSON true must not become an amount of 1.
    if isinstance(amount, bool) or not isinstance(amount, int):
        errors["amount"] = ["Must be an integer in the currency's minor unit."]
    else:
        upper = MAX_AMOUNT
        if isinstance(currency, str) and not currency_problems:
            upper = max_amount(currency)
        if not MIN_AMOUNT <= amount <= upper:
            errors["amount"] = [f"Must be between {MIN_AMOUNT} and {upper}."]
    return errors


@dataclass(frozen=True, slots=True)
class Money:
    """A valid amount in minor units and its currency; constructing an invalid one raises."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if errors := money_errors(self.amount, self.currency):
            raise InvalidMoney(errors)

    def format(self, locale: str = "en_US") -> str:
        """Display form for people, e.g. ``₩30,000``."""
        return format_amount(self.amount, self.currency, locale)


def to_decimal(amount: int, currency: str) -> Decimal:
    """Minor units to major units, exactly: ``to_decimal(1250, "BHD") == Decimal("1.250")``."""
    return Decimal(amount).scaleb(-exponent(currency))


def format_amount(amount: int, currency: str, locale: str = "en_US") -> str:
    """Format minor units for display: KRW 30000 -> ``₩30,000``, BHD 1250 -> ``BHD 1.250``.

    Babel does not apply CLDR's currency spacing, so a symbol made of letters would touch the
    digits (``BHD1.250``); we insert the no-break space that CLDR (and ICU) put there.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidMoney({"amount": ["Must be an integer in the currency's minor unit."]})
    text = format_currency(to_decimal(amount, currency), currency, locale=locale)
    return _apply_currency_spacing(text, get_currency_symbol(currency, locale=locale))


def _is_symbol_or_space(char: str) -> bool:
    return unicodedata.category(char)[0] in {"S", "Z"}


def _apply_currency_spacing(text: str, symbol: str) -> str:
    # CLDR currencySpacing: currencyMatch [[:^S:]&[:^Z:]], surroundingMatch [:digit:], insert NBSP.
    start = text.find(symbol)
    if not symbol or start < 0:
        return text
    end = start + len(symbol)
    if end < len(text) and text[end].isdigit() and not _is_symbol_or_space(symbol[-1]):
        text = text[:end] + _NBSP + text[end:]
    if start > 0 and text[start - 1].isdigit() and not _is_symbol_or_space(symbol[0]):
        text = text[:start] + _NBSP + text[start:]
    return text
