"""`gridlang import`: MATPOWER case files and pandapower networks as .grid cases."""

import re
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import gridlang
from conftest import CASES
from gridlang.cli import app
from gridlang.io.matpower import BR_R, BR_STATUS, BR_X, PD, QD, parse_matpower, read_matpower, to_grid

MATPOWER = CASES / "matpower"
FILES = sorted(MATPOWER.glob("*.m"))
runner = CliRunner()

# A small case in the style of MATPOWER's distribution files: ohm and kW
# before the trailing conversion code.
TINY = """function mpc = tiny
mpc.version = '2';
mpc.baseMVA = 10;
%%  bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
mpc.bus = [ %% (Pd, Qd in kW, kvar)
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t12.66\t1\t1\t1;
\t2\t1\t100\t60\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
\t3\t1\t200\t80\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9
];
mpc.gen = [
\t1\t0\t0\t10\t-10\t1\t100\t1\t10\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0;
];
mpc.branch = [  %% (r, x in ohm)
\t1\t2\t0.0922\t0.0470\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
\t2\t3\t0.4930\t0.2511\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
\t1\t3\t0.5\t0.5\t0\t0\t0\t0\t0\t0\t0\t-360\t360;
];
mpc.gencost = [ 2 0 0 3 0 20 0 ];

[PQ, PV, REF, NONE, BUS_I, BUS_TYPE, PD, QD, GS, BS, BUS_AREA, VM, ...
    VA, BASE_KV, ZONE, VMAX, VMIN, LAM_P, LAM_Q, MU_VMAX, MU_VMIN] = idx_bus;
[F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, RATE_B, RATE_C, ...
    TAP, SHIFT, BR_STATUS, PF, QF, PT, QT, MU_SF, MU_ST, ...
    ANGMIN, ANGMAX, MU_ANGMIN, MU_ANGMAX] = idx_brch;
Vbase = mpc.bus(1, BASE_KV) * 1e3;
Sbase = mpc.baseMVA * 1e6;
mpc.branch(:,[BR_R,BR_X]) = mpc.branch(:,[BR_R,BR_X])/(Vbase^2/Sbase);
mpc.bus(:, [PD QD]) = mpc.bus(:, [PD QD]) * 1e-3;
"""


def _loads(case: gridlang.Case) -> tuple[float, float]:
    """Total P and Q of the loads a compiled case sees, in MW and Mvar."""
    base = case.ir.system.base.power_va / 1e6
    (group,) = [g for g in case.ir.groups if g.kind.name == "load"]
    return float(group.params["p"].sum() * base), float(group.params["q"].sum() * base)


def _lines(case: gridlang.Case) -> dict[str, tuple[float, float]]:
    """r and x of every branch as the compiled case sees them, in p.u. of the system base."""
    (net,) = case.ir.networks
    return {name: (float(net.params["r"][i, 0]), float(net.params["x"][i, 0])) for i, name in enumerate(net.lines)}


# ---------------------------------------------------------------- MATPOWER


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_shipped_case_reads_and_resolves(path):
    case = read_matpower(path)
    assert case.warnings == ()
    assert case.bus.shape[1] >= 13 and case.gen.shape[1] >= 10 and case.branch.shape[1] >= 11
    text = to_grid(case, path.stem)
    gridlang.load(text)  # parses and resolves: names, units, a radial network
    on = int((case.branch[:, BR_STATUS] > 0).sum())
    assert text.count("\n    l") + text.count("\n  transformer ") == on


def test_conversion_statements_are_recognised():
    c33 = read_matpower(MATPOWER / "case33bw.m")
    assert [(c.kind, c.line) for c in c33.conversions] == [("ohm_to_pu", 122), ("kw_to_mw", 125)]
    assert (c33.impedance_unit, c33.load_unit) == ("ohm", "kW")
    assert c33.conversions[0].vbase_kv == 12.66
    # the file's numbers stay as written; converted() is what MATPOWER computes
    assert c33.branch[0, BR_R] == 0.0922 and c33.bus[1, PD] == 100
    mp = c33.converted()
    assert mp.branch[0, BR_R] == pytest.approx(0.0922 / (12.66e3**2 / 10e6), rel=1e-12)
    assert mp.bus[1, PD] == pytest.approx(0.1, rel=1e-12)

    c141 = read_matpower(MATPOWER / "case141.m")  # loads in kVA at power factor 0.85
    assert [c.kind for c in c141.conversions] == ["ohm_to_pu", "kw_to_mw", "power_factor", "power_factor"]
    s = c141.bus[:, PD]
    mp = c141.converted()
    assert mp.bus[:, PD] == pytest.approx(s * 0.85 / 1e3, rel=1e-12)
    assert mp.bus[:, QD] == pytest.approx(s * np.sin(np.arccos(0.85)) / 1e3, rel=1e-12)

    for name in ("case18.m", "case533mt_hi.m"):  # p.u. and MW, no trailing code
        case = read_matpower(MATPOWER / name)
        assert case.conversions == () and (case.impedance_unit, case.load_unit) == ("p.u.", "MW")
    c533 = read_matpower(MATPOWER / "case533mt_hi.m")  # cells like 12/sqrt(3), a row without ';'
    assert c533.base_mva == pytest.approx(50 / 3) and c533.bus[0, 9] == pytest.approx(135 / np.sqrt(3))


@pytest.fixture(scope="module")
def case33() -> gridlang.Case:
    return gridlang.load(to_grid(read_matpower(MATPOWER / "case33bw.m"), "case33bw"))


@pytest.fixture(scope="module")
def case33_result(case33):
    return case33.solve()


def test_case33bw_matches_the_hand_written_case(case33, case33_result):
    r = case33_result
    assert r.optimal
    assert r["grid-import"].sum().item() == pytest.approx(3.715, abs=1e-6)
    v = r["case33bw-voltage"].isel(time=0)
    assert v.min().item() == pytest.approx(0.91593, abs=1e-5)
    assert v.idxmin().item() == "b18"
    # every bus voltage equals the hand-written case's (cases/ieee33_base.grid)
    hand = gridlang.load(CASES / "ieee33_base.grid").solve()
    assert hand["grid-import"].sum().item() == pytest.approx(r["grid-import"].sum().item(), abs=1e-9)
    hv = hand["ieee33-voltage"].isel(time=0)
    assert v.sel(bus=hv.bus).values == pytest.approx(hv.values, abs=1e-9)
    # the objective uses the file's generator cost, 20 $/MWh
    assert r.objective == pytest.approx(20 * 3.715, rel=1e-9)


def test_impedances_reach_the_model_as_matpower_computes_them(case33):
    # ohm in the file: the compiled per-unit values are the file's after its conversion code
    mp = read_matpower(MATPOWER / "case33bw.m").converted()
    lines = _lines(case33)
    for k, row in enumerate(mp.branch, 1):
        if row[BR_STATUS] > 0:
            assert lines[f"l{k}"] == pytest.approx((row[BR_R], row[BR_X]), rel=1e-10)
    assert len(lines) == 32
    # p.u. in the file, with a transformer and two voltage levels: the same p.u. numbers
    c18 = read_matpower(MATPOWER / "case18.m")
    compiled = _lines(gridlang.load(to_grid(c18, "case18")))
    for k, row in enumerate(c18.branch, 1):
        name = f"{'t' if row[8] else 'l'}{k}"
        assert compiled[name] == pytest.approx((row[BR_R], row[BR_X]), rel=1e-10)
    assert "t16" in compiled


def test_case18_with_a_transformer_solves():
    case = gridlang.load(to_grid(read_matpower(MATPOWER / "case18.m"), "case18"))
    r = case.solve()
    assert r.optimal
    assert r["grid-import"].sum().item() == pytest.approx(_loads(case)[0], abs=1e-6)  # lossless


def test_case69_imports_and_solves():
    case69 = read_matpower(MATPOWER / "case69.m")
    case = gridlang.load(to_grid(case69, "case69"))
    p, q = _loads(case)
    # the MATPOWER file's loads add up to 3802.1 kW and 2694.7 kvar (Baran & Wu
    # state 3802.19 kW and 2694.60 kvar; the difference is in the published data)
    assert (p, q) == pytest.approx((case69.bus[:, PD].sum() / 1e3, case69.bus[:, QD].sum() / 1e3), rel=1e-12)
    assert (p, q) == pytest.approx((3.8021, 2.6947), abs=1e-9)
    assert (p, q) == pytest.approx((3.80219, 2.69460), abs=2e-4)
    r = case.solve()
    assert r.optimal
    assert r["grid-import"].sum().item() == pytest.approx(p, abs=1e-6)
    assert r["grid-q"].sum().item() == pytest.approx(q, abs=1e-6)
    assert r["case69-voltage"].min().item() >= 0.9 - 1e-9


def test_formulation_decides_what_is_written():
    case = read_matpower(MATPOWER / "case33bw.m")
    text = to_grid(case, "c33", formulation="copper_plate")
    assert "r [ohm]" not in text and "vmin" not in text and "network c33 uses copper_plate" in text
    r = gridlang.load(text).solve()
    assert r["grid-import"].sum().item() == pytest.approx(3.715, abs=1e-6)


def test_tiny_case_round_trip():
    case = parse_matpower(TINY, "tiny.m")
    assert case.warnings == () and [c.kind for c in case.conversions] == ["ohm_to_pu", "kw_to_mw"]
    text = to_grid(case, "tiny")
    assert "l1 b1 b2 0.0922 0.047" in " ".join(text.split())
    assert "ld3 b3 200 80" in " ".join(text.split()) and "p [kW], q [kvar]" in text
    assert "# l3 b1 b3 is out of service (status 0) and left out" in text
    assert "grid grid1 at b1 { import_price = 20 $/MWh; import_max = 10 MW; export_max = 0 }" in text
    r = gridlang.load(text).solve()
    assert r["grid-import"].sum().item() == pytest.approx(0.3, abs=1e-9)


def test_unknown_trailing_statement_is_a_warning_with_file_and_line(tmp_path):
    extra = "mpc.bus(:, VMAX) = 1.05;\nmpc = toggle_dcline(mpc, 'on');\n"
    case = parse_matpower(TINY + extra, "tiny.m")
    lines = len(TINY.splitlines())
    assert len(case.warnings) == 2
    assert case.warnings[0].startswith(f"tiny.m:{lines + 1}: cannot interpret `mpc.bus(:, VMAX) = 1.05;`")
    assert case.warnings[1].startswith(f"tiny.m:{lines + 2}: cannot interpret `mpc = toggle_dcline(mpc, 'on');`")
    # what was understood still counts
    assert (case.impedance_unit, case.load_unit) == ("ohm", "kW")
    # the command line prints the warnings and still writes the case
    path = tmp_path / "tiny.m"
    path.write_text(TINY + extra)
    out = tmp_path / "tiny.grid"
    r = runner.invoke(app, ["import", str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{path}:{lines + 1}: cannot interpret" in r.output.replace("\n", "")  # rich wraps lines
    assert gridlang.load(out).solve().optimal


@pytest.mark.parametrize(
    ("old", "new", "line", "col", "message"),
    [
        ("\t2\t1\t100\t60\t0", "\t2\t1\t100\t0", 7, 2, "this row of mpc.bus has 12 values but the rows above have 13"),
        ("0.4930", "0.49.30", 15, 10, "unexpected '.30' after a value"),
        ("0.4930", "r2", 15, 6, "unknown name 'r2'"),
        ("0.4930", "@0.4930", 15, 6, "unexpected '@'"),
        ("];\nmpc.gen", "\nmpc.gen", 5, 11, "this matrix is never closed"),
        ("\t1\t2\t0.0922", "\t1\t7\t0.0922", 14, 1, "mpc.branch row 1 refers to bus 7"),
        ("mpc.baseMVA = 10;\n", "", 1, 1, "the case sets no mpc.baseMVA"),
    ],
)
def test_malformed_input_is_a_positioned_error(old, new, line, col, message):
    assert old in TINY
    text = TINY.replace(old, new, 1)
    with pytest.raises(gridlang.GridError) as info:
        parse_matpower(text, "bad.m")
    e = info.value
    assert (e.span.file, e.span.line, e.span.col) == ("bad.m", line, col)
    assert message in e.message and e.hint


def test_cli_reports_a_malformed_file_without_traceback(tmp_path):
    path = tmp_path / "bad.m"
    path.write_text(TINY.replace("0.4930", "0.49.30"))
    out = tmp_path / "bad.grid"
    r = runner.invoke(app, ["import", str(path), "-o", str(out)])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert f"{path}:15:10: error: unexpected '.30'" in r.output.replace("\n", "") and "hint:" in r.output
    assert list(tmp_path.iterdir()) == [path]  # nothing written


def test_cli_writes_the_case_atomically(tmp_path):
    out = tmp_path / "sub" / "c33.grid"
    r = runner.invoke(app, ["import", str(MATPOWER / "case33bw.m"), "-o", str(out), "--name", "feeder"])
    assert r.exit_code == 0, r.output
    assert "33 buses, 32 lines" in r.output
    assert [p.name for p in out.parent.iterdir()] == ["c33.grid"]
    text = out.read_text()
    assert "network feeder uses lindistflow" in text and "system feeder {" in text
    r = runner.invoke(app, ["import", "nothing.xyz", "-o", str(out)])
    assert r.exit_code == 1 and "MATPOWER case file (.m), a pandapower JSON file (.json) or pandapower:NAME" in r.output
    assert out.read_text() == text  # the earlier file is untouched


# ---------------------------------------------------------------- pandapower


def test_missing_pandapower_is_a_clear_error(monkeypatch):
    from gridlang.io.pandapower_net import import_pandapower

    monkeypatch.setitem(sys.modules, "pandapower", None)
    monkeypatch.setitem(sys.modules, "pandapower.networks", None)
    with pytest.raises(gridlang.GridError, match="pandapower is not installed") as info:
        import_pandapower("pandapower:case33bw")
    assert "pip install" in info.value.hint


def test_pandapower_case33bw_gives_the_matpower_import(tmp_path, case33_result):
    pytest.importorskip("pandapower")
    out = tmp_path / "pp33.grid"
    r = runner.invoke(app, ["import", "pandapower:case33bw", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output and "33 buses, 32 lines" in r.output
    text = out.read_text()
    assert "network case33bw uses lindistflow" in text and "import_price = 20 €/MWh" in text
    r = gridlang.load(out).solve()
    assert r["grid-import"].sum().item() == pytest.approx(case33_result["grid-import"].sum().item(), abs=1e-9)
    # pandapower numbers buses from 0: its b17 is MATPOWER's b18
    v = r["case33bw-voltage"].isel(time=0)
    assert v.min().item() == pytest.approx(0.91593, abs=1e-5) and v.idxmin().item() == "b17"
    mv = case33_result["case33bw-voltage"].isel(time=0)
    assert v.values == pytest.approx(mv.sel(bus=[f"b{int(b[1:]) + 1}" for b in v.bus.values]).values, abs=1e-9)


def test_imported_33_bus_network_agrees_with_pandapower_data(case33):
    pp = pytest.importorskip("pandapower")
    import pandapower.networks as pn

    net = pn.case33bw()
    assert isinstance(net, pp.pandapowerNet)
    load = net.load[net.load.in_service]
    p, q = _loads(case33)
    assert p == pytest.approx((load.p_mw * load.scaling).sum(), abs=1e-9)  # 3.715 MW
    assert q == pytest.approx((load.q_mvar * load.scaling).sum(), abs=1e-9)  # 2.3 Mvar
    line = net.line[net.line.in_service]
    z_base = 12.66**2 / 10  # ohm
    lines = _lines(case33)
    assert sum(r for r, _ in lines.values()) * z_base == pytest.approx((line.length_km * line.r_ohm_per_km).sum(), rel=1e-10)
    assert sum(x for _, x in lines.values()) * z_base == pytest.approx((line.length_km * line.x_ohm_per_km).sum(), rel=1e-10)
    assert (line.length_km * line.r_ohm_per_km).sum() == pytest.approx(20.5784, abs=1e-9)


def test_pandapower_transformer_and_lines_match_pandapowers_own_model():
    pp = pytest.importorskip("pandapower")
    import pandapower.networks as pn

    from gridlang.io.pandapower_net import from_pandapower

    net = pn.simple_mv_open_ring_net()  # 110/20 kV transformer, an open switch
    text = from_pandapower(net, "ring")
    assert "transformer t0 from b0 to b1" in text and "switched open" in text
    case = gridlang.load(text)
    compiled = _lines(case)
    pp.runpp(net)  # per-unit branch data on net.sn_mva and each bus voltage; the default T model, turned into a pi as the importer does
    branch = net._ppc["branch"]
    lookup = net._pd2ppc_lookups["branch"]
    start = lookup["line"][0]
    for k, i in enumerate(net.line.index):
        if f"l{i}" in compiled:
            assert compiled[f"l{i}"] == pytest.approx((branch[start + k, 2].real, branch[start + k, 3].real), rel=1e-9)
    start = lookup["trafo"][0]
    assert compiled["t0"] == pytest.approx((branch[start, 2].real, branch[start, 3].real), rel=1e-9)
    r = case.solve()
    # lossless lindistflow: the import is the loads plus the transformer's magnetising
    # losses (leakage, half at each end, at the solved voltages; no tap here)
    leakage = float(re.search(r"transformer t0 .*leakage = ([0-9.e-]+) MW", text).group(1))
    w = r["ring-w"].isel(time=0)
    drawn = leakage / 2 * float(w.sel(bus="b0") + w.sel(bus="b1"))
    assert leakage == pytest.approx(0.014, rel=1e-2)  # pfe_kw = 14 kW at 1 p.u., seen through the T-to-pi change
    assert r.optimal and r["grid-import"].sum().item() == pytest.approx(_loads(case)[0] + drawn, abs=1e-6)


def test_pandapower_sgen_as_pv_or_negative_load():
    pp = pytest.importorskip("pandapower")
    from gridlang.io.pandapower_net import from_pandapower

    net = pp.create_empty_network(sn_mva=1)
    b = [pp.create_bus(net, vn_kv=0.4, min_vm_pu=0.9, max_vm_pu=1.1) for _ in range(3)]
    pp.create_ext_grid(net, b[0], vm_pu=1.0)
    pp.create_line_from_parameters(net, b[0], b[1], length_km=0.1, r_ohm_per_km=0.2, x_ohm_per_km=0.08, c_nf_per_km=0, max_i_ka=0.2)
    pp.create_line_from_parameters(net, b[1], b[2], length_km=0.2, r_ohm_per_km=0.2, x_ohm_per_km=0.08, c_nf_per_km=0, max_i_ka=0.2)
    pp.create_load(net, b[2], p_mw=0.05, q_mvar=0.01)
    pp.create_sgen(net, b[1], p_mw=0.02)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=30)
    text = from_pandapower(net, "lv")
    assert "pv pv0 at b1 { capacity = 0.02 MW; availability = 1 }" in text
    assert "import_price = 30 €/MWh" in text
    assert "r [ohm]" in text and "l0 b0 b1 0.02 0.008" in " ".join(text.split())
    r = gridlang.load(text).solve()
    assert r["grid-import"].sum().item() == pytest.approx(0.03, abs=1e-9)  # the free pv is used fully
    as_load = from_pandapower(net, "lv", sgen="load")
    assert "sg0 b1 -0.02" in " ".join(as_load.split()) and "pv pv0" not in as_load
    assert gridlang.load(as_load).solve()["grid-import"].sum().item() == pytest.approx(0.03, abs=1e-9)


def test_pandapower_names_are_checked():
    pytest.importorskip("pandapower")
    from gridlang.io.pandapower_net import import_pandapower

    with pytest.raises(gridlang.GridError, match="has no network 'case33b'") as info:
        import_pandapower("pandapower:case33b")
    assert "case33bw" in info.value.hint
    with pytest.raises(gridlang.GridError, match="is not pandapower:NAME"):
        import_pandapower("pandapower:")
    with pytest.raises(gridlang.GridError, match="is not NAME or NAME"):
        import_pandapower("pandapower:networks.case33bw")
    assert import_pandapower("pandapower:case33bw()").summary.startswith("33 buses, 32 lines")  # empty arguments are no arguments


def test_pandapower_arguments_are_literals_never_run(tmp_path):
    pytest.importorskip("pandapower")
    from gridlang.io.pandapower_net import import_pandapower, parse_spec

    assert parse_spec('pandapower:create_cigre_network_mv(with_der="pv_wind")') == ("create_cigre_network_mv", {"with_der": "pv_wind"})
    assert parse_spec("pandapower:f(a=1, b=-2.5e3, c=[1, (2, 3)], d=None, e=True)") == ("f", {"a": 1, "b": -2500.0, "c": [1, (2, 3)], "d": None, "e": True})
    marker = tmp_path / "ran"
    for code in (f"__import__('pathlib').Path({str(marker)!r}).touch()", "open('x')", "1 + os.sep", "[x for x in ()]"):
        with pytest.raises(gridlang.GridError, match="is not a literal"):
            import_pandapower(f"pandapower:create_cigre_network_mv(with_der={code})")
    assert not marker.exists()
    with pytest.raises(gridlang.GridError, match="by name"):
        import_pandapower('pandapower:create_cigre_network_mv("pv_wind")')
    with pytest.raises(gridlang.GridError, match="takes no argument 'with_dr'") as info:
        import_pandapower('pandapower:create_cigre_network_mv(with_dr="pv_wind")')
    assert "with_der" in info.value.hint
    with_der = import_pandapower('pandapower:create_cigre_network_mv(with_der="pv_wind")', sgen="load")
    assert "create_cigre_network_mv(with_der=\"pv_wind\")" in with_der.text.splitlines()[0] and " sg" in with_der.text

