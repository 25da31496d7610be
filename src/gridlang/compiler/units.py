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

from dataclasses import dataclass
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

_CURRENCIES = ("$", "€", "USD", "EUR", "CNY", "GBP")


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
    ureg.define("currency = [currency]")
    return ureg


class UnitError(ValueError):
    """A unit text pint cannot read or gridlang cannot place in its base."""


@cache
def parse_unit(text: str) -> tuple[float, Dim]:
    """SI size and dimension exponents of a unit text such as 'kW', '$/kWh', 'p.u.'."""
    normalised = text.replace("p.u.", "pu")
    for symbol in _CURRENCIES:
        normalised = normalised.replace(symbol, "currency")
    try:
        q = _registry().Quantity(1.0, normalised).to_base_units()
    except Exception as exc:  # pint raises several kinds for unknown units
        raise UnitError(f"unknown unit '{text}'") from exc
    d = q.dimensionality
    mass, length, time = d.get("[mass]", 0), d.get("[length]", 0), d.get("[time]", 0)
    current, money = d.get("[current]", 0), d.get("[currency]", 0)
    other = set(d) - {"[mass]", "[length]", "[time]", "[current]", "[currency]"}
    if other or length != 2 * mass:
        raise UnitError(f"unit '{text}' is not a power, energy, time, voltage, impedance or price unit")
    dim = (int(mass), int(time + 3 * mass), int(current), int(money))
    return float(q.magnitude), dim


@dataclass(frozen=True, slots=True)
class Base:
    """The system's per-unit base: power in VA and voltage in V."""

    power_va: float = 1e6
    voltage_v: float = 1e3

    def size(self, dim: Dim) -> float:
        """SI size of one internal unit of dimension ``dim``."""
        a, b, c, _ = dim
        current = self.power_va / self.voltage_v
        return self.power_va**a * 3600.0**b * current**c

    def factor(self, unit: str) -> tuple[float, Dim]:
        """Multiply a number in ``unit`` by the factor to get internal units."""
        si, dim = parse_unit(unit)
        return si / self.size(dim), dim
