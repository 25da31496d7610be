"""Units: parse a unit text once, check dimensions, convert to the per-unit base.

Every quantity gridlang handles is a product of four base dimensions,
power, time, current and money, with integer exponents ``(a, b, c, d)``.
Inside a model, one unit of each is the system base: ``S_base`` (base
power), one hour, ``I_base = S_base / V_base`` and one unit of currency.  So a
value ``x`` given in a unit whose SI size is ``f`` becomes

    x_internal = x * f / (S_base^a * 3600^b * I_base^c)

which gives the usual per-unit system: voltage ``V/V_base``, impedance
``Z / (V_base^2 / S_base)``, energy in base-power hours, prices in currency
per base-power hour.  Unit texts are parsed by pint (cached); arithmetic on
quantities is done on plain floats and arrays with the exponents alongside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import pint

Dim = tuple[int, int, int, int]  # exponents of (power, time, current, money)

DIMENSIONLESS: Dim = (0, 0, 0, 0)
POWER: Dim = (1, 0, 0, 0)
ENERGY: Dim = (1, 1, 0, 0)
TIME: Dim = (0, 1, 0, 0)
VOLTAGE: Dim = (1, 0, -1, 0)

_NAMES: dict[Dim, tuple[str, str]] = {
    DIMENSIONLESS: ("dimensionless", "0.5 or 50 %"),
    POWER: ("power", "250 kW"),
    ENERGY: ("energy", "1 MWh"),
    TIME: ("time", "24 h"),
    VOLTAGE: ("voltage", "12.66 kV"),
    (1, 0, -2, 0): ("impedance", "0.5 ohm"),
    (0, 0, 1, 0): ("current", "200 A"),
    (0, 0, 0, 1): ("money", "100 $"),
    (-1, -1, 0, 1): ("price per energy", "50 $/MWh"),
    (-1, 0, 0, 1): ("price per power", "10 $/kW"),
    (1, -1, 0, 0): ("power per time", "50 kW/h"),
    (-2, -1, 0, 1): ("price per power squared and time", "0.01 $/MW^2/h"),
    (0, -1, 0, 0): ("rate per time", "0.1 1/h"),
}

#: the currencies a unit may name, each its own pint dimension; '$' is written
#: in the models (and by default) for the case's currency, and in case data for USD
_CURRENCIES = {"$": "DOLLAR", "€": "EUR", "USD": "USD", "EUR": "EUR", "CNY": "CNY", "GBP": "GBP"}
CURRENCY_CODES = ("USD", "EUR", "CNY", "GBP")
_SYMBOLS = {"USD": "$", "EUR": "€"}
_UNIT_WORD = re.compile(r"\$|€|[A-Za-z_][A-Za-z0-9_]*")


def describe(dim: Dim) -> str:
    """Name a dimension for messages: 'energy', 'price per energy', ..."""
    if dim in _NAMES:
        return _NAMES[dim][0]
    parts = [f"{n}^{e}" if e != 1 else n for n, e in zip(("power", "time", "current", "money"), dim) if e]
    return " * ".join(parts)


def example(dim: Dim) -> str:
    """A value of that dimension as a user would write it."""
    return _NAMES.get(dim, ("", "a value with a unit"))[1]


@cache
def _registry() -> pint.UnitRegistry:
    ureg = pint.UnitRegistry()
    ureg.define("volt_ampere_reactive = volt * ampere = var")
    ureg.define("per_unit = 1 = pu")
    ureg.define("DOLLAR = [currency_dollar]")
    for code in CURRENCY_CODES:
        ureg.define(f"{code} = [currency_{code.lower()}]")
    return ureg


def _normalised(text: str) -> str:
    """The unit text as pint reads it: p.u. as pu, each currency as its pint unit."""
    return _UNIT_WORD.sub(lambda m: _CURRENCIES.get(m.group(), m.group()), text.replace("p.u.", "pu"))


class UnitError(ValueError):
    """A unit text pint cannot read or gridlang cannot place in its base."""


@cache
def parse_unit(text: str) -> tuple[float, Dim]:
    """SI size and dimension exponents of a unit text such as 'kW', '$/kWh', 'p.u.'."""
    q = _pint(text)
    d = q.dimensionality
    mass, length, time = d.get("[mass]", 0), d.get("[length]", 0), d.get("[time]", 0)
    current = d.get("[current]", 0)
    money = sum(e for k, e in d.items() if k.startswith("[currency_"))
    other = {k for k in d if not k.startswith("[currency_")} - {"[mass]", "[length]", "[time]", "[current]"}
    if other or length != 2 * mass:
        raise UnitError(f"unit '{text}' is not a power, energy, time, voltage, impedance or price unit")
    dim = (int(mass), int(time + 3 * mass), int(current), int(money))
    return float(q.magnitude), dim


@cache
def _pint(text: str):
    try:
        return _registry().Quantity(1.0, _normalised(text)).to_base_units()
    except Exception as exc:  # pint raises several kinds for unknown units
        raise UnitError(f"unknown unit '{text}'") from exc


@cache
def unit_currencies(text: str) -> tuple[tuple[str, int], ...]:
    """The currencies a unit names, with their exponents: '$/MWh' -> (('$', 1),),
    'EUR/MWh' -> (('EUR', 1),), '$/EUR' -> (('$', 1), ('EUR', -1)).  '€' is EUR."""
    d = _pint(text).dimensionality
    out = []
    for key, exponent in d.items():
        if key.startswith("[currency_") and exponent:
            code = key[len("[currency_"):-1].upper()
            out.append(("$" if code == "DOLLAR" else code, int(exponent)))
    return tuple(sorted(out))


def currency_code(text: str) -> str | None:
    """'$' and 'USD' -> 'USD', '€' and 'EUR' -> 'EUR', a known code -> itself, else None."""
    if text == "$":
        return "USD"
    code = _CURRENCIES.get(text)
    return code if code in CURRENCY_CODES else None


def currency_symbol(code: str) -> str:
    """How messages write a currency: '$' for USD, '€' for EUR, else its code."""
    return _SYMBOLS.get(code, code)


class CurrencyError(UnitError):
    """A value in a currency other than the case's, without an exchange rate."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Base:
    """The system's per-unit base: power in VA and voltage in V."""

    power_va: float = 1e6
    voltage_v: float = 1e3
    currency: str = "USD"  # the case's currency, one unit of money internally
    rates: tuple[tuple[str, float], ...] = field(default=())  # (code, value of one in the case's currency)

    def size(self, dim: Dim) -> float:
        """SI size of one internal unit of dimension ``dim``."""
        a, b, c, _ = dim
        current = self.power_va / self.voltage_v
        return self.power_va**a * 3600.0**b * current**c

    def factor(self, unit: str, strict: bool = False) -> tuple[float, Dim]:
        """Multiply a number in ``unit`` by the factor to get internal units.

        Money is counted in the case's currency: a unit in another currency
        ``c`` is multiplied by ``rate[c]`` per power of ``c``, and without a rate
        it is a :class:`CurrencyError`.  '$' stands for the case's currency,
        as the models write it, unless ``strict`` (values of the case), where
        it is USD."""
        si, dim = parse_unit(unit)
        factor = si / self.size(dim)
        for code, exponent in unit_currencies(unit):
            if code == "$":
                code = "USD" if strict else self.currency
            if code != self.currency:
                factor *= self._rate(code, unit) ** exponent
        return factor, dim

    def _rate(self, code: str, unit: str) -> float:
        rates = dict(self.rates)
        if code in rates:
            return rates[code]
        mine, other = currency_symbol(self.currency), currency_symbol(code)
        raise CurrencyError(
            f"'{unit}' is in {other}, but the case's currency is {mine}",
            f"write the value in {mine}, or give an exchange rate in the system statement, e.g. 'exchange = 1.08 {mine}/{code}'"
            + (f", or make {other} the case's currency with 'currency = {code}'" if code in CURRENCY_CODES else ""),
        )
