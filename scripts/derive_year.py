"""Derive the planning year ``cases/data/year_profiles.csv`` from data that packages ship.

The year is 8,760 hourly values (no leap day) of

* ``pv``: PV output per unit of the inverter's AC rating, modelled with pvlib
  from the typical-meteorological-year file that pvlib ships for Greensboro,
  North Carolina (TMY3 station 723170, ``pvlib/data/723170TYA.CSV``);
* ``wind``: wind-turbine output per unit of its rating, from the same file's
  10 m wind speed, raised to hub height with the power law and put through a
  simple power curve;
* ``load``: demandlib's BDEW H0 household standard load profile (with the
  BDEW dynamisation factor, ``h0_dyn``) for the same year, per unit of its peak.

It installs nothing. Run it from the repository root after installing the
``data`` extra::

    .venv/bin/pip install -e ".[data]"
    .venv/bin/python scripts/derive_year.py

It writes ``cases/data/year_profiles.csv`` and ``cases/data/YEAR.md`` (the
provenance: files, package versions, models, this command). The CSV is checked
in, so users and CI never need pvlib or demandlib.

Models
------
Time: the TMY3 rows are hour-ending in local standard time (UTC-5); row
``01:00`` covers 00:00-01:00 and is written as ``2019-01-01 00:00``. The TMY
months (taken from different years) are put on 2019, a non-leap year starting on
a Tuesday. The sun is placed at the middle of each hour.

PV (fixed, south-facing, tilt = latitude 36 deg):
solar position (``pvlib.solarposition.get_solarposition``, NREL SPA), plane of
array irradiance by the Perez 1990 transposition (``get_total_irradiance``,
albedo 0.2), incidence-angle losses on the beam by the physical (Fresnel) model
(``pvlib.iam.physical``), cell temperature by the SAPM model for an open-rack
glass/polymer module (``pvlib.temperature.sapm_cell``), DC power by PVWatts
(``pvlib.pvsystem.pvwatts_dc``, gamma = -0.37 %/K) less the PVWatts default
system losses (``pvwatts_losses()``, 14.08 %), AC power by the PVWatts inverter
model (``pvlib.inverter.pvwatts``, nominal efficiency 96 %) with a DC/AC ratio
of 1.1; ``pv = P_ac / P_ac,rated`` in [0, 1].

Wind: ``v_hub = v_10 * (100 / 10) ** (1/7)`` (hub height 100 m, power-law
exponent 1/7), then ``P = 0`` for ``v < 3`` or ``v >= 25`` m/s (cut-in,
cut-out), ``P = (v^3 - 3^3) / (12^3 - 3^3)`` for ``3 <= v < 12`` and ``P = 1``
for ``12 <= v < 25`` (rated 12 m/s).

Load: ``demandlib.bdew.ElecSlp(2019, holidays=...)`` profile ``h0_dyn`` (15-min
values), with the US federal holidays of 2019 (pandas'
``USFederalHolidayCalendar``: the site's calendar) counted as Sundays, averaged
to hours and divided by the hourly peak.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "cases" / "data"
YEAR = 2019
TMY_FILE = "723170TYA.CSV"
TILT = 36.0
AZIMUTH = 180.0
ALBEDO = 0.2
GAMMA_PDC = -0.0037
ETA_INV = 0.96
DC_AC = 1.1
HUB, MEASURED, ALPHA = 100.0, 10.0, 1 / 7
CUT_IN, RATED, CUT_OUT = 3.0, 12.0, 25.0
COMMAND = 'pip install -e ".[data]" && python scripts/derive_year.py'


def _need(name: str):
    try:
        return __import__(name)
    except ImportError:
        sys.exit(f"derive_year.py needs {name}: install the data extra, pip install -e \".[data]\"")


def weather() -> tuple[pd.DataFrame, dict, Path]:
    """The TMY3 file pvlib ships, on hour-beginning timestamps of ``YEAR``."""
    pvlib = _need("pvlib")
    path = Path(pvlib.__file__).parent / "data" / TMY_FILE
    data, meta = pvlib.iotools.read_tmy3(str(path), coerce_year=YEAR, map_variables=True)
    # hour-ending labels 01:00 .. 24:00 -> hour-beginning 00:00 .. 23:00 of the same day
    data.index = data.index - pd.Timedelta(hours=1)
    assert len(data) == 8760 and data.index[0].year == YEAR and data.index[-1].year == YEAR
    return data, meta, path


def pv_per_unit(data: pd.DataFrame, meta: dict) -> np.ndarray:
    """PV AC output per unit of the inverter rating (see the module docstring)."""
    _need("pvlib")
    from pvlib import atmosphere, iam, inverter, irradiance, pvsystem, solarposition, temperature

    mid = data.index + pd.Timedelta(minutes=30)
    sun = solarposition.get_solarposition(mid, meta["latitude"], meta["longitude"], altitude=meta["altitude"], temperature=data["temp_air"].to_numpy())
    sun.index = data.index
    dni_extra = irradiance.get_extra_radiation(mid).to_numpy()
    airmass = atmosphere.get_relative_airmass(sun["apparent_zenith"])
    poa = irradiance.get_total_irradiance(
        TILT, AZIMUTH, sun["apparent_zenith"], sun["azimuth"], data["dni"], data["ghi"], data["dhi"],
        dni_extra=dni_extra, airmass=airmass, albedo=ALBEDO, model="perez",
    )
    aoi = irradiance.aoi(TILT, AZIMUTH, sun["apparent_zenith"], sun["azimuth"])
    effective = poa["poa_direct"].fillna(0) * iam.physical(aoi) + poa["poa_diffuse"].fillna(0)
    params = temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
    t_cell = temperature.sapm_cell(poa["poa_global"].fillna(0), data["temp_air"], data["wind_speed"], **params)
    pdc = pvsystem.pvwatts_dc(effective, t_cell, pdc0=DC_AC, gamma_pdc=GAMMA_PDC)
    pdc = np.clip(pdc.to_numpy(), 0, None) * (1 - pvsystem.pvwatts_losses() / 100)
    inverter_pdc0 = 1.0 / ETA_INV  # so that the rated AC output is exactly 1
    pac = inverter.pvwatts(pdc, pdc0=inverter_pdc0, eta_inv_nom=ETA_INV)
    return np.clip(np.asarray(pac, dtype=float) / (ETA_INV * inverter_pdc0), 0.0, 1.0)


def wind_per_unit(data: pd.DataFrame) -> np.ndarray:
    """Wind output per unit of rating: power-law hub height, cubic power curve."""
    v = data["wind_speed"].to_numpy(dtype=float) * (HUB / MEASURED) ** ALPHA
    ramp = (v**3 - CUT_IN**3) / (RATED**3 - CUT_IN**3)
    return np.where(v < CUT_IN, 0.0, np.where(v < RATED, ramp, np.where(v < CUT_OUT, 1.0, 0.0)))


def load_per_unit() -> np.ndarray:
    """BDEW H0 (dynamised) for ``YEAR``, hourly means, per unit of the peak hour."""
    _need("demandlib")
    from demandlib import bdew
    from pandas.tseries.holiday import USFederalHolidayCalendar

    days = USFederalHolidayCalendar().holidays(f"{YEAR}-01-01", f"{YEAR}-12-31")
    holidays = {d.date(): "US federal holiday" for d in days}
    quarter = bdew.ElecSlp(YEAR, holidays=holidays).get_profiles("h0_dyn")["h0_dyn"]
    hourly = quarter.resample("h").mean().to_numpy(dtype=float)
    assert len(hourly) == 8760
    return hourly / hourly.max()


def main() -> None:
    data, meta, _ = weather()
    table = pd.DataFrame(
        {
            "timestamp": data.index.strftime("%Y-%m-%d %H:%M"),
            "pv": pv_per_unit(data, meta),
            "wind": wind_per_unit(data),
            "load": load_per_unit(),
        }
    )
    OUT.mkdir(parents=True, exist_ok=True)
    csv = OUT / "year_profiles.csv"
    table.to_csv(csv, index=False, float_format="%.4f", lineterminator="\n")
    stats = {s: (table[s].mean(), table[s].max(), table[s].sum()) for s in ("pv", "wind", "load")}
    lines = [
        "# The planning year: `year_profiles.csv`",
        "",
        f"8,760 hourly rows (no leap day) of {YEAR}, local standard time (UTC-5), hour-beginning",
        "timestamps; `pv`, `wind` and `load` are per unit (of the PV inverter's AC rating, of the",
        "turbine's rating, of the peak load). Written by `scripts/derive_year.py`; regenerate with",
        "",
        "```sh",
        f"{COMMAND}",
        "```",
        "",
        "| series | mean (capacity / load factor) | max | annual energy, p.u.·h |",
        "|--------|------|-----|------|",
        *(f"| {s} | {m:.4f} | {x:.4f} | {e:,.1f} |" for s, (m, x, e) in stats.items()),
        "",
        "## Sources",
        "",
        f"- Weather: `pvlib/data/{TMY_FILE}` shipped with pvlib {version('pvlib')}: the TMY3 file of",
        f"  station {meta['USAF']} {meta['Name'].strip(chr(34)).title()}, {meta['State']} (lat {meta['latitude']}, lon {meta['longitude']},",
        f"  {meta['altitude']:g} m), from NREL's National Solar Radiation Database (public). Read with",
        f"  `pvlib.iotools.read_tmy3(coerce_year={YEAR})`: the typical months come from different",
        f"  years and are put on {YEAR}. Hour-ending rows shifted to hour-beginning timestamps.",
        f"- Load: demandlib {version('demandlib')}, `demandlib.bdew.ElecSlp({YEAR})` profile `h0_dyn`",
        "  (BDEW H0 standard household profile with the BDEW dynamisation factor), with the US",
        f"  federal holidays of {YEAR} (pandas {version('pandas')}, `USFederalHolidayCalendar`) as Sundays.",
        "  The H0 shape is German household data; here it is used with the site's calendar.",
        "",
        "## Models",
        "",
        f"- PV: fixed south-facing array, tilt {TILT:g} deg (the latitude). Solar position at the middle",
        "  of each hour (`pvlib.solarposition.get_solarposition`, SPA); plane-of-array irradiance by",
        f"  the Perez 1990 model (`pvlib.irradiance.get_total_irradiance`, albedo {ALBEDO}); beam",
        "  incidence-angle losses by `pvlib.iam.physical`; cell temperature by the SAPM model",
        "  (`pvlib.temperature.sapm_cell`, open rack glass/polymer); DC power by PVWatts",
        f"  (`pvlib.pvsystem.pvwatts_dc`, gamma {GAMMA_PDC * 100:g} %/K), less the PVWatts default losses",
        f"  ({pvsystem_losses():.2f} %); AC by the PVWatts inverter (`pvlib.inverter.pvwatts`, nominal",
        f"  efficiency {ETA_INV:.0%}); DC/AC ratio {DC_AC}. `pv` = AC power / rated AC power.",
        f"- Wind: 10 m wind speed of the TMY file raised to a {HUB:g} m hub by the power law",
        f"  (exponent 1/7); power curve 0 below {CUT_IN:g} m/s (cut-in) and from {CUT_OUT:g} m/s (cut-out),",
        f"  `(v^3 - {CUT_IN:g}^3) / ({RATED:g}^3 - {CUT_IN:g}^3)` up to {RATED:g} m/s (rated), 1 from there.",
        "- Load: 15-minute H0 values averaged to hours, divided by the largest hour.",
        "",
        f"Python {sys.version.split()[0]}, numpy {version('numpy')}, pandas {version('pandas')}.",
        "",
    ]
    (OUT / "YEAR.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {csv} ({len(table)} rows) and {OUT / 'YEAR.md'}")
    for s, (m, x, _) in stats.items():
        print(f"  {s:5s} mean {m:.4f}  max {x:.4f}")


def pvsystem_losses() -> float:
    from pvlib import pvsystem

    return float(pvsystem.pvwatts_losses())


if __name__ == "__main__":
    main()
