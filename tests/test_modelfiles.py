"""Model files (LP, MPS, CBF) and the SCIP backend, proven by round trips.

Each file is read back by a solver or parser that gridlang does not control
(HiGHS, SCIP, MOSEK's CBF reader) and solved or inspected against the model.
"""

import re
import shutil
import sys

import highspy
import numpy as np
import pyscipopt
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import gridlang
from conftest import CASES, ROOT
from gridlang.cli import app
from gridlang.errors import GridError
from gridlang.io import modelfiles
from gridlang.solvers import problem_class

HEAD = "system s {{ base_power = 1 MVA; base_voltage = 10 kV; horizon = {h} h; step = 1 h }}\n"
PLATE = "network n uses copper_plate { bus b1 { slack }; bus b2 }\n"
FEEDER = """network n uses distflow_soc {
  bus b1 { slack }; bus b2; bus b3
  line l1 from b1 to b2 { r = 1 ohm; x = 2 ohm }
  line l2 from b2 to b3 { r = 1.5 ohm; x = 1 ohm; smax = 4 MVA }
}
"""
# a unit with an on/off decision: the relaxation (on = 2/3) is cheaper than
# any integer choice, so the integrality matters
UNIT = """kind unit at bus {{
  param pmax: MW; param pmin: MW; param fixed: $/h; param price: $/MWh
  var on[t] {on}
  var p[t]: MW in [0, pmax]
  upper: p[t] <= pmax * on[t]
  lower: p[t] >= pmin * on[t]
  inject p[t] = p[t]
  cost fixed * on[t] * dt
  cost price * p[t] * dt
  {extra}
}}
grid g at b1 {{ import_price = 50 $/MWh }}
unit u1 at b{at} {{ pmax = 3 MW; pmin = 1 MW; fixed = 20 $/h; price = 10 $/MWh }}
"""


def unit_case(network: str, load: str, on: str = "binary", extra: str = "", h: int = 1, at: int = 3) -> str:
    return HEAD.format(h=h) + network + UNIT.format(on=on, extra=extra, at=at) + load + "\nobjective minimize cost\n"


MISOCP = {"network": FEEDER, "load": "load ld at b3 { p = 2 MW; q = 0.5 Mvar }"}
MILP = {"network": PLATE, "load": "profile demand = [0.5, 2]\nload ld at b2 { p = 1 MW; scale = demand }", "h": 2, "at": 2}
MIQP = {**MILP, "extra": "cost 4 $/MW^2/h * p[t]^2 * dt"}
QP = HEAD.format(h=2) + PLATE + """grid g at b1 { import_price = 30 $/MWh }
load ld at b2 { p = 2 MW }
generator gen at b2 { pmax = 5 MW; marginal_cost = 20 $/MWh; quadratic_cost = 2 $/MW^2/h; ramp = 1 MW/h }
"""


@pytest.fixture(scope="module")
def soc_folder(tmp_path_factory):
    """The IEEE 33-bus base case under the DistFlow SOC relaxation."""
    folder = tmp_path_factory.mktemp("soc")
    for path in CASES.glob("ieee33_*.grid"):
        shutil.copy(path, folder / path.name)
    network = folder / "ieee33_network.grid"
    network.write_text(network.read_text().replace("uses lindistflow", "uses distflow_soc"))
    return folder


@pytest.fixture(scope="module")
def soc(soc_folder):
    """(case, Clarabel result) of the SOC case."""
    case = gridlang.load(soc_folder / "ieee33_base.grid")
    result = case.solve("clarabel")
    assert result.optimal and result.objective == pytest.approx(3.917677, abs=1e-6)
    return case, result


def _highs(path):
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(path)) == highspy.HighsStatus.kOk
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return h


def _scip(path):
    m = pyscipopt.Model()
    m.hideOutput()
    m.readProblem(str(path))
    return m


# ------------------------------------------------------------------ LP and MPS


@pytest.mark.parametrize("suffix", ["lp", "mps"])
@pytest.mark.parametrize("source", ["dispatch", "milp", "qp"])
def test_linear_and_quadratic_files_solved_by_highs(source, suffix, tmp_path):
    text = {"dispatch": CASES / "ieee33_dispatch.grid", "milp": unit_case(**MILP), "qp": QP}[source]
    case = gridlang.load(text)
    built = case.built
    path = modelfiles.write_model(built, tmp_path / f"model.{suffix}")
    h = _highs(path)
    lp = h.getLp()
    assert (lp.num_col_, lp.num_row_) == (built.model.nvars, built.model.ncons)
    ours = case.solve("highs").objective
    assert h.getInfo().objective_function_value + built.offset == pytest.approx(ours, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("text", [CASES / "ieee33_dispatch.grid", unit_case(**MILP), QP], ids=["lp", "milp", "qp"])
def test_lp_without_cones_is_what_linopy_writes(text, tmp_path):
    built = gridlang.load(text).built
    built.model.to_file(tmp_path / "linopy.lp", explicit_coordinate_names=True)
    modelfiles.write_model(built, tmp_path / "ours.lp")
    assert _body(tmp_path / "ours.lp") == (tmp_path / "linopy.lp").read_text()


def test_lp_of_every_golden_case_is_the_golden_file(tmp_path):
    """tests/golden/*.lp are linopy's files of every standard-library kind."""
    from test_golden_lp import CASES as GOLDEN, GOLDEN as FOLDER, HEAD as GOLDEN_HEAD

    for name, text in GOLDEN.items():
        built = gridlang.load(GOLDEN_HEAD + text + "\n").built
        path = modelfiles.write_model(built, tmp_path / f"{name}.lp")
        assert _body(path) == (FOLDER / f"{name}.lp").read_text(), name


def _body(path) -> str:
    """A model file gridlang wrote, without its first line (a comment saying so)."""
    first, _, body = path.read_text().partition("\n")
    assert first == f"\\ {modelfiles.WRITTEN_BY}", first
    return body


@pytest.mark.parametrize("suffix", ["lp", "mps"])
def test_soc_files_solved_by_scip(soc, suffix, tmp_path):
    case, clarabel = soc
    built = case.built
    path = modelfiles.write_model(built, tmp_path / f"soc.{suffix}")
    cones = sum(len(b.rows()) for b in built.cones)
    assert cones == 32
    m = _scip(path)
    assert (m.getNVars(), m.getNConss()) == (built.model.nvars, built.model.ncons + cones)
    m.optimize()
    assert m.getStatus() == "optimal"
    assert m.getObjVal() + built.offset == pytest.approx(clarabel.objective, rel=1e-5)


def test_cone_text_in_lp_and_mps(soc, tmp_path):
    built = soc[0].built
    lp = modelfiles.write_model(built, tmp_path / "soc.lp").read_text()
    # the rotated cone P^2 + Q^2 <= w[from] isq of line l1, with the names of the linear part
    block = re.search(r"ieee33_current\(l1,0\)#\d+:\n\[\n(.*?)\n\]\n<= 0\.0\n", lp, re.S)
    assert block is not None
    terms = block.group(1).splitlines()
    assert terms[:2] == ["+1.0 ieee33_P(l1,0)#35 ^2", "+1.0 ieee33_Q(l1,0)#67 ^2"]
    assert re.fullmatch(r"-1\.0 ieee33_isq\(l1,0\)#\d+ \* ieee33_w\(b1,0\)#\d+", terms[2])
    for name in re.findall(r"[+-][\d.e+-]+ (\S+)", block.group(1)):
        assert f"<=  {name} <= " in lp  # every member has its bounds line
    mps = modelfiles.write_model(built, tmp_path / "soc.mps").read_text()
    rows = mps.split("COLUMNS\n")[0]
    assert rows.count("\n L  ieee33_current(") == 32
    qc = mps.split("QCMATRIX   ieee33_current(l1,0)#")[1].split("QCMATRIX")[0].splitlines()[1:]
    entries = {(a, b): float(v) for a, b, v in (line.split() for line in qc)}
    assert entries[("ieee33_P(l1,0)#35",) * 2] == 1.0
    off = [v for (a, b), v in entries.items() if a != b]
    assert off == [-0.5, -0.5]  # the full symmetric matrix of -isq w


def test_cone_heads_get_nonnegative_lower_bounds(tmp_path):
    """norm(p, q) <= 2 s makes an auxiliary head t == 2 s (free in linopy); the files bound it by 0."""
    text = HEAD.format(h=1) + PLATE + """kind inverter at bus {
  var p[t]: MW in [-1, 1]
  var q[t]: Mvar in [-1, 1]
  var s[t]: MVA
  q_set: q[t] == 0.3
  cap: norm(p[t], q[t]) <= 2 * s[t]
  inject p[t] = p[t]
  cost 5 $/MWh * s[t] * dt
}
grid g at b1 { import_price = 40 $/MWh }
inverter inv at b2
load ld at b2 { p = 1 MW }
objective minimize cost
"""
    case = gridlang.load(text)
    built = case.built
    assert built.model.variables["inverter-cap_m0"].lower.item() == -np.inf
    lp = modelfiles.write_model(built, tmp_path / "inv.lp").read_text()
    assert re.search(r"\n\+0\.0 <=  inverter_cap_m0\(inv,0\)#\d+ <= \+inf\n", lp)
    reference = case.solve("clarabel").objective
    for suffix in ("lp", "mps"):
        m = _scip(modelfiles.write_model(built, tmp_path / f"inv.{suffix}"))
        m.optimize()
        assert m.getObjVal() == pytest.approx(reference, rel=1e-5)


# ------------------------------------------------------------------ CBF

try:  # the independent CBF reader (the `test` extra installs it; parsing needs no licence)
    import mosek
except ImportError:  # pragma: no cover
    mosek = None
needs_mosek = pytest.mark.skipif(mosek is None, reason="mosek (CBF reader) is not installed")


def _read_cbf(path):
    """MOSEK's parse of a CBF file: columns, their types and bounds, and every affine conic constraint."""
    task = mosek.Env().Task()
    task.readdata(str(path))  # parsing needs no licence
    n, nafe = task.getnumvar(), task.getnumafe()
    afe, var, val = task.getafeftrip()
    F = sp.csr_matrix((np.asarray(val), (np.asarray(afe), np.asarray(var))), shape=(nafe, n))
    g = np.asarray(task.getafegslice(0, nafe)) if nafe else np.zeros(0)
    accs = [(task.getdomaintype(task.getaccdomain(k)), np.asarray(task.getaccafeidxlist(k))) for k in range(task.getnumacc())]
    bk, bl, bu = task.getvarboundslice(0, n)
    lower = np.where([k in (mosek.boundkey.lo, mosek.boundkey.ra, mosek.boundkey.fx) for k in bk], bl, -np.inf)
    upper = np.where([k in (mosek.boundkey.up, mosek.boundkey.ra, mosek.boundkey.fx) for k in bk], bu, np.inf)
    integer = np.array([t == mosek.variabletype.type_int for t in task.getvartypelist(list(range(n)))], dtype=bool)
    return {"n": n, "numcon": task.getnumcon(), "F": F, "g": g, "accs": accs, "lower": lower, "upper": upper,
            "integer": integer, "c": np.asarray(task.getc()), "sense": task.getobjsense(), "qobj": task.getnumqobjnz()}


def _check_cbf(built, data):
    """The parsed file is the model: objective, integers, rows, bounds and cones, coefficient by coefficient."""
    m = built.model
    mat = m.matrices
    n = len(mat.vlabels)
    assert data["n"] == n and data["numcon"] == 0 and data["qobj"] == 0
    assert data["sense"] == mosek.objsense.minimize
    np.testing.assert_array_equal(data["c"], mat.c)
    np.testing.assert_array_equal(data["integer"], np.isin(mat.vtypes, ["B", "I"]))
    linear = {mosek.domaintype.rzero: "=", mosek.domaintype.rplus: ">", mosek.domaintype.rminus: "<"}
    rows = [(linear[d], idx) for d, idx in data["accs"] if d in linear]
    cones = [(d, idx) for d, idx in data["accs"] if d not in linear]
    sense = np.concatenate([np.full(len(idx), s) for s, idx in rows])
    idx = np.concatenate([idx for _, idx in rows])
    F, g = data["F"][idx], data["g"][idx]

    # the linear constraints, row by row: A x - b in the domain of the sense
    k = mat.A.shape[0]
    assert abs(F[:k] - mat.A).max() == 0
    np.testing.assert_array_equal(g[:k], -mat.b)
    np.testing.assert_array_equal(sense[:k], mat.sense)

    # the bounds: MOSEK's column bounds (from the domains) and one-entry rows x - v
    lower, upper = data["lower"].copy(), data["upper"].copy()
    B = F[k:].tocsr()
    assert (np.diff(B.indptr) == 1).all() and (B.data == 1).all()
    for s, col, v in zip(sense[k:], B.indices, -g[k:]):
        if s in "=>":
            lower[col] = max(lower[col], v)
        if s in "=<":
            upper[col] = min(upper[col], v)
    np.testing.assert_array_equal(lower, mat.lb)
    np.testing.assert_array_equal(upper, mat.ub)

    # the cones, in order, each selecting its members (u / 2 first in a rotated one)
    pos = m.variables.label_index.label_to_pos
    expected = [(blk.kind, pos[r]) for blk in built.cones for r in blk.rows()]
    assert len(cones) == len(expected)
    for (domain, afes), (kind, members) in zip(cones, expected):
        assert domain == (mosek.domaintype.rquadratic_cone if kind == "rsoc" else mosek.domaintype.quadratic_cone)
        C = data["F"][afes].tocsr()
        assert (np.diff(C.indptr) == 1).all() and (data["g"][afes] == 0).all()
        np.testing.assert_array_equal(C.indices, members)
        np.testing.assert_array_equal(C.data, [0.5 if kind == "rsoc" and j == 0 else 1.0 for j in range(len(members))])


@needs_mosek
def test_cbf_of_soc_case_parsed_by_mosek(soc, tmp_path):
    case, clarabel = soc
    built = case.built
    data = _read_cbf(modelfiles.write_model(built, tmp_path / "soc.cbf"))
    _check_cbf(built, data)
    assert sum(d == mosek.domaintype.rquadratic_cone for d, _ in data["accs"]) == 32
    # the parsed problem holds at Clarabel's solution and has its objective
    x_by_label = np.zeros(built.model._xCounter)
    for _, var in built.model.variables.items():
        labels = var.labels.values.ravel()
        x_by_label[labels[labels >= 0]] = var.solution.values.ravel()[labels >= 0]
    x = x_by_label[built.model.matrices.vlabels]
    assert data["c"] @ x + built.offset == pytest.approx(clarabel.objective, rel=1e-9)


@needs_mosek
def test_cbf_of_misocp_case_parsed_by_mosek(tmp_path):
    built = gridlang.load(unit_case(**MISOCP)).built
    assert problem_class(built).value == "MISOCP"
    data = _read_cbf(modelfiles.write_model(built, tmp_path / "unit.cbf"))
    _check_cbf(built, data)
    assert data["integer"].sum() == 1
    kinds = [d for d, _ in data["accs"]]
    # the rotated current cones of l1 and l2, and P^2 + Q^2 <= smax^2 of l2
    assert kinds.count(mosek.domaintype.rquadratic_cone) == 2 and kinds.count(mosek.domaintype.quadratic_cone) == 1
    text = (tmp_path / "unit.cbf").read_text()
    assert "\nINT\n1\n" in text and "\nQR 4\n" in text and "\nQ 3\n" in text


def test_cbf_refuses_a_quadratic_objective(tmp_path):
    built = gridlang.load(QP).built
    with pytest.raises(GridError, match="quadratic objective cannot be written in CBF"):
        modelfiles.write_model(built, tmp_path / "qp.cbf")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ SCIP backend


def test_scip_solves_the_soc_case_like_clarabel(soc):
    case, clarabel = soc
    result = case.solve("scip")
    assert result.termination == "optimal" and result.primal_status == "feasible" and result.solver == "scip"
    assert result.objective == pytest.approx(clarabel.objective, rel=1e-5)
    assert result.residual < 1e-5
    assert float(result["ieee33-voltage"].min()) == pytest.approx(float(clarabel["ieee33-voltage"].min()), abs=1e-4)
    assert bool(result["ieee33-price_p"].isnull().all())  # SCIP gives no duals
    case.solve("clarabel")  # leave the shared case as Clarabel solved it


def _enumerated(params: dict, solver: str) -> float:
    """Best objective over the unit's fixed on/off choices (one step)."""
    return min(gridlang.load(unit_case(**params, on=f"in [{v}, {v}]")).solve(solver).objective for v in (0, 1))


def test_scip_solves_a_misocp():
    case = gridlang.load(unit_case(**MISOCP))
    assert problem_class(case.built).value == "MISOCP"
    result = case.solve()  # SCIP is the default for MISOCP
    assert result.solver == "scip" and result.optimal
    assert result.objective == pytest.approx(_enumerated(MISOCP, "clarabel"), rel=1e-5)
    assert result["unit-on"].item() == pytest.approx(1.0, abs=1e-6)
    relaxed = gridlang.load(unit_case(**MISOCP, on="in [0, 1]")).solve("clarabel").objective
    assert relaxed < result.objective - 1  # the integrality matters


def test_scip_solves_a_milp_like_highs():
    case = gridlang.load(unit_case(**MILP))
    assert problem_class(case.built).value == "MILP"
    highs = case.solve("highs").objective
    result = case.solve("scip")
    assert result.optimal and result.objective == pytest.approx(highs, rel=1e-6)
    assert result["unit-on"].values.ravel() == pytest.approx([0, 1], abs=1e-6)


def test_scip_solves_a_miqp():
    case = gridlang.load(unit_case(**MIQP))
    assert problem_class(case.built).value == "MIQP"
    result = case.solve()  # SCIP is the default for MIQP
    assert result.solver == "scip" and result.optimal
    # both steps decide alone (no coupling); enumerate each step's choice with HiGHS's QP
    params = {**MIQP, "h": 1}
    best = 0.0
    for scale in (0.5, 2):
        step = {**params, "load": f"load ld at b2 {{ p = {scale} MW }}"}
        best += _enumerated(step, "highs")
    assert result.objective == pytest.approx(best, rel=1e-6)


def test_scip_options_and_mistakes(soc):
    case, clarabel = soc
    result = case.solve("scip", time_limit=60, limits_gap=1e-6, **{"numerics/feastol": 1e-7})
    assert result.objective == pytest.approx(clarabel.objective, rel=1e-6)
    with pytest.raises(GridError, match="SCIP has no parameter 'nonsense'"):
        case.solve("scip", nonsense=1)
    with pytest.raises(GridError, match="limits/time"):
        case.solve("scip", time_limit="soon")
    case.solve("clarabel")


def test_scip_infeasible_case_is_explained():
    text = HEAD.format(h=1) + PLATE + UNIT.format(on="binary", extra="", at=2).replace("grid g at b1 { import_price = 50 $/MWh }\n", "") + "load ld at b2 { p = 5 MW }\n"
    with pytest.raises(GridError, match="infeasible"):
        gridlang.load(text).solve("scip")


def test_study_picks_scip_with_options():
    text = unit_case(**MILP) + "study s: dispatch { solver = scip; limits_time = 30; mip_rel_gap = 0 }\n"
    result = gridlang.load(text).solve()
    assert result.solver == "scip" and result.optimal


# ------------------------------------------------------------------ CLI and scale


def test_compile_command_writes_all_formats(soc_folder, tmp_path):
    runner = CliRunner()
    for suffix in ("lp", "mps", "cbf"):
        out = tmp_path / f"m.{suffix}"
        r = runner.invoke(app, ["compile", str(soc_folder / "ieee33_base.grid"), "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert "SOCP" in r.output and "32 cones" in r.output and out.stat().st_size > 0
    qp = tmp_path / "qp.grid"
    qp.write_text(QP)
    r = runner.invoke(app, ["compile", str(qp), "-o", str(tmp_path / "qp.cbf")])
    assert r.exit_code == 1 and "CBF" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.cbf", "m.lp", "m.mps", "qp.grid"]


@needs_mosek
def test_feeder_files_are_consistent_at_scale(tmp_path):
    """A 300-bus, 4-step SOC feeder: every reader sees every row and cone."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from feeder import make_feeder, render_grid
    finally:
        sys.path.pop(0)
    built = gridlang.load(render_grid(make_feeder(300, 4)).replace("uses lindistflow", "uses distflow_soc")).built
    cones = sum(len(b.rows()) for b in built.cones)
    assert cones == 299 * 4
    for suffix in ("lp", "mps"):
        m = _scip(modelfiles.write_model(built, tmp_path / f"f.{suffix}"))
        assert (m.getNVars(), m.getNConss()) == (built.model.nvars, built.model.ncons + cones)
    data = _read_cbf(modelfiles.write_model(built, tmp_path / "f.cbf"))
    _check_cbf(built, data)
