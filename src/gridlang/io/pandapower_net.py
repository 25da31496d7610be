"""pandapower networks as ``.grid`` text.

:func:`from_pandapower` converts a ``pandapowerNet``:

- ``bus`` -> buses ``b<index>`` (``min_vm_pu``/``max_vm_pu`` as vmin/vmax);
  buses joined by closed bus-bus switches become one bus;
- ``line`` -> a line table, impedance ``length_km * r_ohm_per_km`` (and x)
  in ohm, divided by ``parallel``, referred to the system base voltage;
- ``trafo`` -> ``transformer`` items, r and x from ``vk_percent``,
  ``vkr_percent`` and ``sn_mva`` on the system base (as pandapower computes
  them), written in ohm;
- ``load`` -> a load table (``p_mw``, ``q_mvar`` times ``scaling``);
- ``sgen`` -> ``pv`` assets with a capacity of their ``p_mw`` and an
  availability of 1, or (``sgen="load"``) fixed negative loads;
- ``ext_grid`` -> the slack bus (``v_set = vm_pu``) and a ``grid`` asset
  priced from ``poly_cost``; ``gen`` -> generators.

Open line and transformer switches leave the branch out.  Elements gridlang
has no counterpart for (``trafo3w``, ``shunt``, ``storage``, ...) are
reported as warnings.  pandapower is optional: it is imported when needed.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import replace
from typing import Any

from gridlang.errors import COMMAND_LINE, GridError, did_you_mean
from gridlang.io.gridtext import PV, Branch, Bus, Feeder, Generator, Imported, Load, Supply, dropped, grid_name, num, summary, write_grid

#: element tables gridlang does not convert
_UNSUPPORTED = (
    "trafo3w", "impedance", "dcline", "ward", "xward", "motor",
    "asymmetric_load", "asymmetric_sgen", "svc", "tcsc", "ssc", "vsc", "line_dc", "source_dc", "load_dc",
)  # fmt: skip


def _pandapower():
    """The pandapower package, or a clear error when it is not installed."""
    try:
        import pandapower
        import pandapower.networks  # noqa: F401  (loads the submodule)
    except ImportError:
        raise GridError(COMMAND_LINE, "pandapower is not installed", "install it with: pip install pandapower  (or pip install -e '.[test]')") from None
    return pandapower


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``pandapower:NAME`` or ``pandapower:NAME(arg=value, ...)``: the function name and its
    keyword arguments.  The text is only parsed; each value must be a Python literal (a
    number, string, bool, None, or a tuple/list/dict of them), read by ``ast.literal_eval``
    -- nothing in it is run."""
    import ast

    prefix, _, call = spec.partition(":")
    example = "e.g. pandapower:case33bw or pandapower:create_cigre_network_mv(with_der=\"pv_wind\")"
    if prefix != "pandapower" or not call.strip():
        raise GridError(COMMAND_LINE, f"'{spec}' is not pandapower:NAME", example)
    try:
        tree = ast.parse(call.strip(), mode="eval").body
    except SyntaxError as exc:
        raise GridError(COMMAND_LINE, f"cannot read '{call}': {exc.msg}", example) from None
    if isinstance(tree, ast.Name):
        return tree.id, {}
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise GridError(COMMAND_LINE, f"'{call}' is not NAME or NAME(arg=value, ...)", example)
    if tree.args:
        raise GridError(COMMAND_LINE, f"give the arguments of {tree.func.id} by name", f"e.g. pandapower:{tree.func.id}(name=value)")
    kwargs: dict[str, Any] = {}
    for k in tree.keywords:
        if k.arg is None:
            raise GridError(COMMAND_LINE, "'**' is not accepted in a network's arguments", example)
        try:
            kwargs[k.arg] = ast.literal_eval(k.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise GridError(COMMAND_LINE, f"the value of '{k.arg}' is not a literal: {ast.get_source_segment(call.strip(), k.value)}",
                            "arguments are numbers, 'strings', True/False/None, or lists of them") from None
    return tree.func.id, kwargs


def import_pandapower(spec: str, name: str | None = None, formulation: str = "lindistflow", sgen: str = "pv", seed: int = 0) -> Imported:
    """Import ``pandapower:NAME(arg=value, ...)``, a function of ``pandapower.networks``
    called with literal keyword arguments, numpy's and Python's random generators
    seeded with ``seed`` first (so random networks import the same each time)."""
    import random

    import numpy as np

    func_name, kwargs = parse_spec(spec)
    pp = _pandapower()
    networks = pp.networks
    func = getattr(networks, func_name, None)
    if func_name.startswith("_") or not callable(func) or inspect.isclass(func):
        known = [n for n in dir(networks) if not n.startswith("_") and inspect.isfunction(getattr(networks, n))]
        raise GridError(COMMAND_LINE, f"pandapower.networks has no network '{func_name}'", did_you_mean(func_name, known) or "e.g. pandapower:case33bw")
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for key in kwargs:
        if params and not takes_any and key not in params:
            raise GridError(COMMAND_LINE, f"pandapower.networks.{func_name} takes no argument '{key}'",
                            did_you_mean(key, list(params)) or f"it takes: {', '.join(params) or 'none'}")
    required = [p.name for p in params.values() if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in kwargs]
    if required:
        raise GridError(COMMAND_LINE, f"pandapower.networks.{func_name} needs arguments ({', '.join(required)})",
                        f"give them by name, e.g. pandapower:{func_name}({required[0]}=...)")
    random.seed(seed)
    np.random.seed(seed)
    try:
        net = func(**kwargs)
    except Exception as exc:  # pandapower's own failures (missing data files, optional packages, bad arguments)
        raise GridError(COMMAND_LINE, f"pandapower.networks.{func_name}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(net, pp.pandapowerNet):
        raise GridError(COMMAND_LINE, f"pandapower.networks.{func_name}() does not return a network", "choose a function that returns a pandapowerNet")
    call = spec.partition(":")[2].strip()
    return convert_pandapower(net, name or func_name, formulation, sgen, source=f"pandapower.networks.{call} (random generators seeded with {seed})")


def import_json(path: str, name: str | None = None, formulation: str = "lindistflow", sgen: str = "pv") -> Imported:
    """Import a network saved by ``pandapower.to_json``."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise GridError(COMMAND_LINE, f"no such pandapower JSON file: {path}", "give the path of a file written by pandapower.to_json")
    pp = _pandapower()
    try:
        net = pp.from_json(str(p))
    except Exception as exc:
        raise GridError(COMMAND_LINE, f"cannot read {path} as a pandapower network: {type(exc).__name__}: {exc}", "give a file written by pandapower.to_json") from None
    return convert_pandapower(net, name or p.stem, formulation, sgen, source=f"the pandapower JSON file {p.name}")


def from_pandapower(net: Any, name: str, formulation: str = "lindistflow", sgen: str = "pv") -> str:
    """The ``.grid`` text of a pandapower network (see the module's description)."""
    return convert_pandapower(net, name, formulation, sgen).text


def convert_pandapower(net: Any, name: str, formulation: str = "lindistflow", sgen: str = "pv", source: str | None = None) -> Imported:
    """Like :func:`from_pandapower`, with the warnings about what was not converted."""
    _pandapower()
    if sgen not in ("pv", "load"):
        raise GridError(COMMAND_LINE, f"--sgen is 'pv' or 'load', not '{sgen}'", "pv: curtailable pv plants; load: fixed negative loads, as in a power flow")
    feeder, warnings = _feeder(net, name, sgen, source)
    text = write_grid(feeder, formulation)
    return Imported(text, (*warnings, *dropped(feeder, formulation)), summary(feeder))


def _trafo_pi(row, vn_hv_bus: float, vn_lv_bus: float, base_mva: float) -> tuple[float, float, float, float, float, list[str]]:
    """A two-winding transformer as pandapower models it, in per unit of the system base.

    Series impedance ``z = vk/100 * (vn_lv_trafo/vn_lv_bus)^2 * base/sn`` (r from
    vkr), magnetising admittance ``y_m = (pfe - j sqrt((i0 sn/100)^2 - pfe^2)) / vn_lv^2``
    (per unit), both over ``parallel``; the T model (half the impedance on each
    side of y_m) is turned into the equivalent pi, whose shunt is split equally
    between the ends.  A ratio tap moves the rated voltage of its side by
    ``(tap_pos - tap_neutral) tap_step_percent``; the off-nominal ratio at the
    high-voltage end is ``(vn_hv_trafo / vn_lv_trafo) / (vn_hv_bus / vn_lv_bus)``.
    Returns r, x, g, b (total shunt), the ratio and notes on what is not modelled."""
    notes = []
    vn_hv, vn_lv = float(row["vn_hv_kv"]), float(row["vn_lv_kv"])
    pos, neutral, step = _finite(row, "tap_pos"), _finite(row, "tap_neutral"), _finite(row, "tap_step_percent")
    # pandapower 3 moves a tap only of type Ratio or Symmetrical (Ideal shifts the phase only;
    # no type, no tap); without the column (older nets) every tap is a ratio tap
    if "tap_changer_type" in row.index:
        kind = row["tap_changer_type"]
    else:  # before pandapower 3: tap_phase_shifter marks an ideal phase shifter
        kind = "Ideal" if "tap_phase_shifter" in row.index and row["tap_phase_shifter"] is True else "Ratio"
    if "tap_dependency_table" in row.index and row["tap_dependency_table"] is True:
        notes.append("tap characteristic table not read")
    if pos is not None and neutral is not None and step is not None and pos != neutral and kind in ("Ratio", "Symmetrical"):
        if _finite(row, "tap_step_degree"):
            notes.append(f"phase step of the {kind} tap not modelled")
        factor = 1 + (pos - neutral) * step / 100
        if str(row.get("tap_side", "hv")) == "lv":
            vn_lv *= factor
        else:
            vn_hv *= factor
    if _finite(row, "shift_degree"):
        notes.append(f"phase shift {num(float(row['shift_degree']))} deg (no effect on a radial feeder's magnitudes)")
    parallel = _finite(row, "parallel") or 1.0
    sn = float(row["sn_mva"])
    scale = (vn_lv / vn_lv_bus) ** 2 * base_mva / sn
    z, r = float(row["vk_percent"]) / 100 * scale, float(row["vkr_percent"]) / 100 * scale
    x = math.copysign(math.sqrt(max(z * z - r * r, 0.0)), z)
    pfe = (_finite(row, "pfe_kw") or 0.0) * 1e-3
    ym = (_finite(row, "i0_percent") or 0.0) / 100 * sn
    to_pu = (vn_lv_bus**2 / base_mva) * parallel / float(row["vn_lv_kv"]) ** 2 / (vn_lv / float(row["vn_lv_kv"])) ** 2
    y = complex(pfe, -math.sqrt(max(ym * ym - pfe * pfe, 0.0))) * to_pu
    zs = complex(r, x) / parallel
    if y:  # T to pi (star to delta) with half the impedance on each side
        za = zb = zs / 2
        zc = 1 / y
        total = za * zb + za * zc + zb * zc
        zs, y = total / zc, 2 / (total / zb)
    ratio = (vn_hv / vn_lv) / (vn_hv_bus / vn_lv_bus)
    return zs.real, zs.imag, y.real, y.imag, ratio, notes


def _finite(row, column: str) -> float | None:
    """``row[column]`` as a float when the column exists and holds a finite number."""
    try:
        v = float(row[column])
    except (KeyError, TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _on(row) -> bool:
    try:
        return bool(row["in_service"])
    except KeyError:
        return True


def _feeder(net: Any, name: str, sgen_as: str, source: str | None = None) -> tuple[Feeder, list[str]]:
    warnings: list[str] = []
    approximated: list[str] = []  # element classes changed by the import, with their size
    header = [f"Imported from {source or f'the pandapower network {name!r}'} by `gridlang import`.", ""]
    left_out: list[str] = []
    label = f"pandapower network '{name}'"

    buses = net.bus
    on = {int(b) for b, row in buses.iterrows() if _on(row)}
    # closed bus-bus switches join buses into one; open line and transformer switches cut branches
    parent = {int(b): int(b) for b in buses.index}

    def node(b: int) -> int:
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    open_branches: dict[tuple[str, int], set[int]] = {}  # the buses at which a branch is switched open
    switch = getattr(net, "switch", None)
    if switch is not None:
        for _, s in switch.iterrows():
            closed = bool(s["closed"])
            if s["et"] == "b" and closed:
                a, b = node(int(s["bus"])), node(int(s["element"]))
                parent[max(a, b)] = min(a, b)
            elif s["et"] in ("l", "t") and not closed:
                open_branches.setdefault((str(s["et"]), int(s["element"])), set()).add(int(s["bus"]))

    # the reference: ext_grid, else generators marked as slack
    slack_rows = [(i, row) for i, row in net.ext_grid.iterrows() if _on(row) and int(row["bus"]) in on]
    gens = getattr(net, "gen", None)
    slack_gens: set[int] = set()
    if not slack_rows and gens is not None and "slack" in gens:
        slack_rows = [(i, row) for i, row in gens.iterrows() if _on(row) and bool(row["slack"]) and int(row["bus"]) in on]
        slack_gens = {int(i) for i, _ in slack_rows}
    if not slack_rows:
        raise GridError(COMMAND_LINE, f"the {label} has no ext_grid in service", "the network needs an ext_grid (or a gen with slack=True) as its reference")
    ref_bus = int(slack_rows[0][1]["bus"])
    base_kv = float(num(float(buses.at[ref_bus, "vn_kv"])))
    base_mva = float(num(float(net.sn_mva)))
    z_base = base_kv**2 / base_mva
    kvs = sorted({float(buses.at[b, "vn_kv"]) for b in on})
    v_set = {node(int(row["bus"])): float(row["vm_pu"]) for _, row in slack_rows}

    # shunts: p_mw, q_mvar (consumed, per step) at their vn_kv, as power at 1 p.u. of the bus
    shunts: dict[int, tuple[float, float]] = {}
    shunt = getattr(net, "shunt", None)
    for _, row in (shunt.iterrows() if shunt is not None else ()):
        if not _on(row) or int(row["bus"]) not in on:
            continue
        b = node(int(row["bus"]))
        vn = _finite(row, "vn_kv") or float(buses.at[int(row["bus"]), "vn_kv"])
        k = (_finite(row, "step") or 1.0) * (float(buses.at[int(row["bus"]), "vn_kv"]) / vn) ** 2
        gs, bs = shunts.get(b, (0.0, 0.0))
        shunts[b] = (gs + float(row["p_mw"]) * k, bs - float(row["q_mvar"]) * k)
    if shunts:
        header.append("Shunts are gs (MW drawn) and bs (Mvar given) at 1 p.u.: p_mw x step and -q_mvar x step at the bus voltage.")

    out_buses = []
    for b, row in buses.iterrows():
        b = int(b)
        if b not in on:
            left_out.append(f"bus b{b} is out of service and left out")
            continue
        if node(b) != b:
            left_out.append(f"bus b{b} is joined to b{node(b)} by closed bus switches")
            continue
        vmin, vmax = _finite(row, "min_vm_pu"), _finite(row, "max_vm_pu")
        gs, bs = shunts.get(b, (0.0, 0.0))
        out_buses.append(Bus(f"b{b}", b, vmin, vmax, b in v_set, v_set.get(b), gs, bs))

    def ends(kind: str, index: int, a: int, b: int, on_: bool, what: str) -> tuple[int, int] | None:
        if not on_ or (kind, index) in open_branches:
            left_out.append(f"{what} b{a} b{b} is out of service or switched open and left out")
            return None
        if a not in on or b not in on:
            left_out.append(f"{what} b{a} b{b} ends at a bus out of service and is left out")
            return None
        na, nb = node(a), node(b)
        if na == nb:
            left_out.append(f"{what} b{a} b{b} joins one bus to itself through closed switches and is left out")
            return None
        return na, nb

    branches = []
    open_ended: dict[int, tuple[float, float]] = {}
    f_hz = float(getattr(net, "f_hz", 50.0) or 50.0)
    for i, row in net.line.iterrows():
        i = int(i)
        fb, tb = int(row["from_bus"]), int(row["to_bus"])
        parallel = _finite(row, "parallel") or 1.0
        length = float(row["length_km"])
        vn = float(buses.at[fb, "vn_kv"])
        # shunt admittance of the pi model, as power at 1 p.u. of the line's voltage
        b_siemens = 2 * math.pi * f_hz * (_finite(row, "c_nf_per_km") or 0.0) * 1e-9 * length * parallel
        g_siemens = (_finite(row, "g_us_per_km") or 0.0) * 1e-6 * length * parallel
        open_at = open_branches.get(("l", i), set())
        if _on(row) and len(open_at & {fb, tb}) == 1 and fb in on and tb in on and (b_siemens or g_siemens):
            # open at one end only: still energised from the other, where its whole shunt is seen
            # (up to the drop across its own series impedance)
            fed = node(tb if fb in open_at else fb)
            g0, b0 = open_ended.get(fed, (0.0, 0.0))
            open_ended[fed] = (g0 + g_siemens * vn**2, b0 + b_siemens * vn**2)
        e = ends("l", i, fb, tb, _on(row), f"line l{i}")
        if e is None:
            continue
        refer = (base_kv / vn) ** 2
        r = length * float(row["r_ohm_per_km"]) / parallel * refer
        x = length * float(row["x_ohm_per_km"]) / parallel * refer
        branches.append(Branch(f"l{i}", f"b{e[0]}", f"b{e[1]}", r, x, charging=b_siemens * vn**2, leakage=g_siemens * vn**2))
    if open_ended:
        total = sum(b for _, b in open_ended.values())
        approximated.append(f"{len(open_ended)} lines switched open at one end, {num(round(total, 4))} Mvar of charging, seen as shunts at their closed end")
        header.append(f"The charging of lines switched open at one end ({num(round(total, 4))} Mvar) is a shunt at their closed end.")
        out_buses = [replace(b, gs=b.gs + open_ended[b.number][0], bs=b.bs + open_ended[b.number][1]) if b.number in open_ended else b for b in out_buses]
    if any(b.charging for b in branches):
        header.append(f"Line charging is 2 pi f c_nf_per_km x length_km (f = {num(f_hz)} Hz) as Mvar at 1 p.u., half at each end.")

    trafos = getattr(net, "trafo", None)
    for i, row in (trafos.iterrows() if trafos is not None else ()):
        i = int(i)
        hv, lv = int(row["hv_bus"]), int(row["lv_bus"])
        e = ends("t", i, hv, lv, _on(row), f"transformer t{i}")
        if e is None:
            continue
        r, x, g, b, tap, notes = _trafo_pi(row, float(buses.at[hv, "vn_kv"]), float(buses.at[lv, "vn_kv"]), base_mva)
        branches.append(Branch(f"t{i}", f"b{e[0]}", f"b{e[1]}", r * z_base, x * z_base, True, ", ".join(notes), b * base_mva, tap, g * base_mva))
    header.append("Line r, x are length_km x r_ohm_per_km, x_ohm_per_km (over parallel), in ohm.")
    if any(b.transformer for b in branches):
        header.append("Transformers as pandapower's T model (vk_percent, vkr_percent, pfe_kw, i0_percent, sn_mva) turned into a pi on the system base:")
        header.append("r, x in ohm, magnetising as charging (Mvar) and leakage (MW) at 1 p.u., the tap position as an off-nominal ratio at the high-voltage end.")
    if len(kvs) > 1:
        header.append(f"The buses have several voltages ({', '.join(num(k) for k in kvs)} kV); all impedances are referred to {num(base_kv)} kV.")

    # loads, and static generators as pv plants or negative loads
    loads: list[Load] = []
    pvs: list[PV] = []
    rows = [(int(i), row) for i, row in net.load.iterrows() if _on(row) and int(row["bus"]) in on]
    per_bus: dict[int, int] = {}
    for _, row in rows:
        per_bus[node(int(row["bus"]))] = per_bus.get(node(int(row["bus"])), 0) + 1
    zip_loads, zip_mw = 0, 0.0
    for i, row in rows:
        b = node(int(row["bus"]))
        scaling = _finite(row, "scaling")
        scaling = 1.0 if scaling is None else scaling
        p, q = float(row["p_mw"]) * scaling, float(row["q_mvar"]) * scaling
        voltage_dependent = bool(_finite(row, "const_z_percent") or _finite(row, "const_i_percent") or _finite(row, "const_z_p_percent") or _finite(row, "const_i_p_percent"))
        zip_loads += voltage_dependent
        zip_mw += p * voltage_dependent
        if p or q:
            loads.append(Load(f"ld{b}" if per_bus[b] == 1 else f"ld{b}_{i}", f"b{b}", p, q))
    if zip_loads:
        header.append(f"{zip_loads} loads have voltage-dependent shares; they are modelled as constant power.")
        approximated.append(f"{zip_loads} voltage-dependent loads, {num(round(zip_mw, 4))} MW, approximated as constant power")
    sgen_q, sgen_mvar = 0, 0.0
    for i, row in net.sgen.iterrows():
        if not _on(row) or int(row["bus"]) not in on:
            continue
        b = node(int(row["bus"]))
        scaling = _finite(row, "scaling")
        scaling = 1.0 if scaling is None else scaling
        p, q = float(row["p_mw"]) * scaling, float(row["q_mvar"]) * scaling
        if sgen_as == "pv" and p >= 0:
            pvs.append(PV(f"pv{int(i)}", f"b{b}", p))
            sgen_q += q != 0
            sgen_mvar += abs(q)
        elif p or q:
            loads.append(Load(f"sg{int(i)}", f"b{b}", -p, -q))
    storage = getattr(net, "storage", None)
    stored = 0
    for i, row in (storage.iterrows() if storage is not None else ()):
        if not _on(row) or int(row["bus"]) not in on:
            continue
        scaling = _finite(row, "scaling")
        scaling = 1.0 if scaling is None else scaling
        p, q = float(row["p_mw"]) * scaling, float(row["q_mvar"]) * scaling
        if p or q:
            loads.append(Load(f"st{int(i)}", f"b{node(int(row['bus']))}", p, q))
            stored += 1
    if stored:
        header.append(f"{stored} storage units are fixed loads at their p_mw, q_mvar (as in pandapower's power flow).")
        approximated.append(f"{stored} storage units, {num(round(sum(ld.p for ld in loads[-stored:]), 4))} MW, approximated as fixed loads")
    if sgen_q:
        header.append(f"The reactive power of {sgen_q} static generators (pv here) is not modelled.")
        approximated.append(f"{sgen_q} static generators' reactive power, {num(round(sgen_mvar, 4))} Mvar, dropped (pv plants; --sgen load keeps it)")
    if sgen_as == "pv" and pvs:
        header.append("Static generators are pv plants with their p_mw as capacity and an availability of 1.")
    elif len(net.sgen):
        header.append("Static generators are fixed negative loads.")

    # the grid at the reference, generators, and their costs from poly_cost
    costs: dict[tuple[str, int], tuple[float, float]] = {}
    poly = getattr(net, "poly_cost", None)
    for _, row in (poly.iterrows() if poly is not None else ()):
        costs[(str(row["et"]), int(row["element"]))] = (_finite(row, "cp1_eur_per_mw") or 0.0, _finite(row, "cp2_eur_per_mw2") or 0.0)
    pwl = getattr(net, "pwl_cost", None)
    if pwl is not None and len(pwl):
        warnings.append(f"{label}: {len(pwl)} piecewise-linear costs (pwl_cost) are not imported")
    supplies = []
    for i, row in slack_rows:
        et = "gen" if slack_gens else "ext_grid"
        b = node(int(row["bus"]))
        c1, c2 = costs.get((et, int(i)), (0.0, 0.0))
        if c1 <= 0:
            header.append(f"{et} {i} has no linear cost in poly_cost; its grid connection is priced at 1 €/MWh.")
        if c2:
            header.append(f"The quadratic cost of {et} {i} is left out.")
        pmax, pmin = _finite(row, "max_p_mw"), _finite(row, "min_p_mw")
        export = None if pmin is None else max(-pmin, 0.0)
        supplies.append(Supply(f"grid{b}", f"b{b}", c1 if c1 > 0 else 1.0, pmax if pmax is not None and pmax > 0 else None, export))
    generators = []
    for i, row in (gens.iterrows() if gens is not None else ()):
        i = int(i)
        if i in slack_gens:
            continue
        if not _on(row) or int(row["bus"]) not in on:
            left_out.append(f"generator g{i} at b{int(row['bus'])} is out of service and left out")
            continue
        b = node(int(row["bus"]))
        scaling = _finite(row, "scaling")
        p = float(row["p_mw"]) * (1.0 if scaling is None else scaling)
        pmax, pmin = _finite(row, "max_p_mw"), _finite(row, "min_p_mw")
        controllable = bool(row["controllable"]) if "controllable" in row and row["controllable"] == row["controllable"] else pmax is not None
        if not controllable or pmax is None:
            pmax = pmin = p  # a fixed set point
        qmax, qmin = _finite(row, "max_q_mvar"), _finite(row, "min_q_mvar")
        c1, c2 = costs.get(("gen", i), (0.0, 0.0))
        generators.append(Generator(f"g{i}", f"b{b}", pmax, pmin if pmin is not None else 0.0, math.inf if qmax is None else qmax, -math.inf if qmin is None else qmin, c1, c2))
    if generators:
        header.append("Voltage set points of generators (vm_pu) are not modelled.")
        approximated.append(f"{len(generators)} generator voltage set points (vm_pu) dropped (their generators dispatch P and Q freely within limits)")

    for table in _UNSUPPORTED:
        frame = getattr(net, table, None)
        if frame is None or not len(frame):
            continue
        on_rows = frame[frame["in_service"].astype(bool)] if "in_service" in frame else frame
        if len(on_rows):
            column = next((c for c in ("p_mw", "ps_mw", "sn_hv_mva", "sn_mva") if c in on_rows), None)
            size = f", {num(round(float(on_rows[column].abs().sum()), 4))} {'MVA' if 'sn' in column else 'MW'}" if column else ""
            warnings.append(f"{label}: {len(on_rows)} {table} elements{size}, dropped (gridlang has no counterpart)")
    return (
        Feeder(
            name=grid_name(name),
            base_mva=base_mva,
            base_kv=base_kv,
            buses=tuple(out_buses),
            branches=tuple(branches),
            loads=tuple(loads),
            supplies=tuple(supplies),
            generators=tuple(generators),
            pvs=tuple(pvs),
            header=tuple(header),
            left_out=tuple(left_out),
            approximated=tuple(approximated),
            currency="€",
        ),
        warnings,
    )
