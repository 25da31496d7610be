"""Model-layer definitions: kinds and formulations, checked before use.

Turns ``kind`` and ``formulation`` syntax into :class:`ModelDef` and checks
every name in their statements: a name is a parameter, a variable, a
built-in, a set, an index bound by a ``sum(... for i in ...)``, or an index
written directly inside ``[ ]`` (which ranges over the set at that position).
"""

from __future__ import annotations

from collections.abc import Iterator

from gridlang.compiler.ir import BUS, LINE, SETS, TIME, ModelDef, ParamSpec
from gridlang.compiler.units import UnitError, parse_unit
from gridlang.errors import Collector, did_you_mean
from gridlang.grammar import ast

#: names every model statement may use
BUILTINS = {"dt", "hour", "first", "last", "inf", "true", "false"}
#: functions of the model layer
FUNCTIONS = {"sum", "sqrt", "abs", "min", "max", "norm", "annuity", "wrap", "from", "to", "into", "out_of"}
INDEX_FUNCTIONS = {"wrap", "from", "to", "into", "out_of"}


def model_def(node: ast.KindDef | ast.FormulationDef, errors: Collector) -> ModelDef:
    """Sort a kind's or formulation's declarations and check their names."""
    formulation = isinstance(node, ast.FormulationDef)
    params: dict[str, ParamSpec] = {}
    declared: dict[str, ast.Ident] = {}
    for decl in node.body:
        if isinstance(decl, ast.ParamDecl | ast.VarDecl):
            if decl.name.name in declared:
                errors.add(decl.name.span, f"'{decl.name.name}' is declared twice in {node.name.name}", "rename one of them")
            declared[decl.name.name] = decl.name
        if isinstance(decl, ast.ParamDecl):
            spec = _param_spec(decl, formulation, errors)
            if spec is not None:
                params[spec.name] = spec
    _check_bounds(node, params, errors)
    if not formulation and isinstance(node, ast.KindDef) and node.at.name != BUS:
        errors.add(node.at.span, f"a kind is placed 'at bus', not at '{node.at.name}'")
    if not formulation and node.name.name in SETS:
        errors.add(node.name.span, f"'{node.name.name}' is a set name and cannot name a kind", "choose another name")
    body = node.body
    defn = ModelDef(
        name=node.name.name,
        formulation=formulation,
        radial=getattr(node, "radial", False),
        params=params,
        vars=tuple(d for d in body if isinstance(d, ast.VarDecl)),
        constraints=tuple(d for d in body if isinstance(d, ast.Constraint)),
        injects=tuple(d for d in body if isinstance(d, ast.Inject)),
        costs=tuple(d for d in body if isinstance(d, ast.Cost)),
        outputs=tuple(d for d in body if isinstance(d, ast.Output)),
        span=node.name.span,
    )
    if formulation and defn.injects:
        errors.add(defn.injects[0].span, "a formulation cannot inject; kinds inject into the network")
    return defn


def _param_spec(decl: ast.ParamDecl, formulation: bool, errors: Collector) -> ParamSpec | None:
    over = [d.name for d in decl.dims]
    if formulation and over not in ([BUS], [LINE]):
        errors.add(decl.name.span, f"a formulation parameter is per bus or per line: write '{decl.name.name}[bus]' or '{decl.name.name}[line]'")
        return None
    if not formulation and over:
        errors.add(decl.dims[0].span, "a kind's parameters are per instance and take no [ ]", f"write 'param {decl.name.name}'")
        return None
    dim = (0, 0, 0, 0)
    if decl.unit is not None:
        if decl.unit.name == "flag":
            dim = None
        else:
            try:
                dim = parse_unit(decl.unit.name)[1]
            except UnitError as exc:
                errors.add(decl.unit.span, str(exc))
    if decl.bound is not None and dim is None:
        errors.add(decl.bound.span, f"'{decl.name.name}' is a flag and has no range", "remove the range")
    unit = decl.unit.name if decl.unit is not None and dim is not None else None
    return ParamSpec(decl.name.name, over[0] if over else None, dim, decl.default, decl.name.span, decl.bound if dim is not None else None, unit)


def _check_bounds(node: ast.KindDef | ast.FormulationDef, params: dict[str, ParamSpec], errors: Collector) -> None:
    """A range is written with numbers, ``inf`` and the definition's other parameters."""
    known = set(params) | {"inf"}
    for decl in node.body:
        if isinstance(decl, ast.ParamDecl) and decl.bound is not None:
            for end in (decl.bound.lower, decl.bound.upper):
                if end is not None:
                    _check_data(end, known, errors, node.name.name)


def _check_data(e: ast.Expr, known: set[str], errors: Collector, owner: str) -> None:
    match e:
        case ast.Name(id, span):
            if id not in known:
                errors.add(span, f"unknown name '{id}' in the range of a parameter of {owner}", did_you_mean(id, known) or "a range uses numbers, inf and the other parameters")
        case ast.BinOp(_, left, right) | ast.Pow(left, right):
            _check_data(left, known, errors, owner)
            _check_data(right, known, errors, owner)
        case ast.Neg(operand):
            _check_data(operand, known, errors, owner)
        case ast.Number():
            pass
        case _:
            errors.add(e.span, f"a parameter's range in {owner} is a number, inf or another parameter", "e.g. 'in (0, 1]', '>= 0' or '>= vmin'")


def check_names(defn: ModelDef, channels: set[str], errors: Collector) -> None:
    """Every name a statement uses must be declared, built in or an index."""
    known = set(defn.params) | {v.name.name for v in defn.vars} | BUILTINS
    if defn.formulation:
        known |= {BUS, LINE, TIME} | {f"injected_{c}" for c in channels}
    else:
        known |= {TIME}
    for decl in (*defn.vars, *defn.constraints, *defn.injects, *defn.costs, *defn.outputs):
        for expr in _exprs(decl):
            _check(expr, known, errors, defn.name)


def _exprs(decl) -> Iterator[ast.Expr]:
    match decl:
        case ast.VarDecl(domain=domain, where=where):
            yield from (e for e in (domain.lower, domain.upper, where) if e is not None)
        case ast.Constraint(expr=expr, where=where) | ast.Cost(expr=expr, where=where):
            yield expr
            if where is not None:
                yield where
        case ast.Inject(expr=expr) | ast.Output(expr=expr):
            yield expr


def _check(e: ast.Expr, known: set[str], errors: Collector, owner: str) -> None:
    match e:
        case ast.Name(id, span):
            if id not in known:
                errors.add(span, f"unknown name '{id}' in {owner}", did_you_mean(id, known))
        case ast.Indexed(name, indices):
            if name.name not in known:
                errors.add(name.span, f"unknown name '{name.name}' in {owner}", did_you_mean(name.name, known))
            for index in indices:
                _check_index(index, known, errors, owner)
        case ast.Generator(func, body, var, domain, cond):
            if func.name not in ("sum",):
                errors.add(func.span, f"'{func.name}(... for ...)' is not supported", "use sum(... for i in set)")
            _check_index(domain, known, errors, owner)
            inner = known | {var.name}
            _check(body, inner, errors, owner)
            if cond is not None:
                _check(cond, inner, errors, owner)
        case ast.Call(func, args):
            if func.name not in FUNCTIONS:
                errors.add(func.span, f"unknown function '{func.name}'", did_you_mean(func.name, FUNCTIONS))
            for a in args:
                (_check_index if func.name in INDEX_FUNCTIONS else _check)(a, known, errors, owner)
        case ast.BinOp(_, left, right):
            _check(left, known, errors, owner)
            _check(right, known, errors, owner)
        case ast.Neg(operand) | ast.Not(operand):
            _check(operand, known, errors, owner)
        case ast.Pow(base, exponent):
            _check(base, known, errors, owner)
            _check(exponent, known, errors, owner)
        case ast.Compare(operands) | ast.BoolOp(_, operands):
            for o in operands:
                _check(o, known, errors, owner)
        case ast.Str(_, span) | ast.ListLit(span=span):
            errors.add(span, "strings and lists belong in the case, not in model statements")


def _check_index(e: ast.Expr, known: set[str], errors: Collector, owner: str) -> None:
    """Inside [ ] or an index function a bare name is an index, so anything goes."""
    match e:
        case ast.Name():
            return
        case ast.BinOp(_, left, right):
            _check_index(left, known, errors, owner)
            _check_index(right, known, errors, owner)
        case _:
            _check(e, known, errors, owner)
