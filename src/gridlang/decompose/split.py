"""Split a compiled case by agent: private subproblems and the coupling rows.

Every column of the model belongs to one agent: a kind's variable to the
owner of its instance, a network's to the network owner, a market's sales
to the seller.  A row whose columns all belong to one agent is that agent's
own; a row with columns of several agents is a *coupling row* (a nodal
balance, a market balance).  Each agent's subproblem holds its columns, its
own rows, cones and costs, and its contribution to the coupling rows,

    y_a = C_a x_a - d_a,        sum_a y_a = 0 at every coupling row,

where ``d_a`` is the part of the row's right-hand side the agent owns (the
whole of it for one contributor of the row, the network owner if it takes
part).  A coordinator only ever sees the ``y_a`` and the multipliers of the
coupling rows: nothing here is specific to one case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from gridlang.errors import GridError

if TYPE_CHECKING:  # a worker unpickling a Subproblem needs none of the compiler
    from gridlang.compiler.build import Built


@dataclass(frozen=True, slots=True, eq=False)
class Subproblem:
    """One agent's private problem and its coupling contribution (see the module doc)."""

    agent: str
    vlabels: np.ndarray  # linopy labels of its columns
    A: sp.csr_matrix  # its own rows
    b: np.ndarray
    sense: np.ndarray  # '=', '<', '>'
    lb: np.ndarray
    ub: np.ndarray
    c: np.ndarray
    Q: sp.csr_matrix  # its block of the objective's Hessian
    cones: tuple[tuple[str, np.ndarray], ...]  # (kind, local column positions per cone)
    rows: np.ndarray  # the coupling rows it contributes to (global coupling ids)
    C: sp.csr_matrix  # (len(rows), columns)
    d: np.ndarray  # its share of those rows' right-hand sides
    penalty: np.ndarray | None = None  # ADMM: the relative weight of each of its rows in the proximal term (None: all 1; see admm.penalties)


@dataclass(frozen=True, slots=True, eq=False)
class Split:
    agents: tuple[str, ...]
    subproblems: tuple[Subproblem, ...]
    n_coupling: int
    contributors: np.ndarray  # agents per coupling row
    offset: float  # constant part of the objective
    positions: np.ndarray  # each coupling row's position among the model's matrix rows
    labels: np.ndarray  # each coupling row's linopy constraint label


def column_owners(built: Built, agents: tuple[str, ...]) -> np.ndarray:
    """Agent index of every linopy variable label (-1: none)."""
    m = built.model
    case = built.case
    index = {a: i for i, a in enumerate(agents)}
    kinds = {g.kind.name for g in case.groups}
    networks = {n.name for n in case.networks}
    markets = {mk.name for mk in case.markets}
    of_item = {item: index.get(agent, -1) for item, agent in case.owners.items()}  # instance or network -> agent index
    owner = np.full(m._xCounter, -1, dtype=np.int64)

    def along(labels, dim: str, who) -> np.ndarray:
        """Agent indices given per coordinate of ``dim``, spread over the variable."""
        who = np.asarray([who.get(str(v), -1) for v in labels.coords[dim].values], dtype=np.int64)
        return np.broadcast_to(who.reshape([labels.sizes[d] if d == dim else 1 for d in labels.dims]), labels.shape)

    for name, var in m.variables.items():
        prefix = name.split("-", 1)[0]
        labels = var.labels
        if prefix in kinds and prefix in labels.dims:
            agent = along(labels, prefix, of_item)
        elif prefix in networks:
            agent = np.full(labels.shape, of_item.get(prefix, -1))
        elif prefix in markets:
            agent = along(labels, "seller", index)
        else:
            raise GridError(case.system.span, f"cannot tell which agent owns the variable '{name}'", "every variable must belong to a kind, network or market")
        active = labels.values >= 0
        owner[labels.values[active]] = agent[active]
    return owner


def split(built: Built) -> Split:
    """The subproblem of every agent and the coupling rows (see the module doc)."""
    case = built.case
    agents = tuple(dict.fromkeys(case.owners.values()))
    if len(agents) < 2:
        raise GridError(case.system.span, "a decomposition needs two or more agents", "declare them with 'agent NAME owns ...'")
    if built.integer:
        raise GridError(case.system.span, "a decomposition of a mixed-integer case is not supported", "solve it centrally (method = central)")
    m = built.model
    mat = m.matrices
    vlabels = np.asarray(mat.vlabels)
    label_owner = column_owners(built, agents)
    col_owner = label_owner[vlabels]
    if (col_owner < 0).any():
        name, _ = m.variables.get_label_position(int(vlabels[np.argmax(col_owner < 0)]))
        raise GridError(case.system.span, f"the variable '{name}' has no agent", "give every asset and network an owner")
    A = mat.A.tocsr() if mat.A is not None else sp.csr_matrix((0, len(vlabels)))
    A.eliminate_zeros()  # an explicit zero does not make an agent take part in a row
    coo = A.tocoo()
    n_rows = A.shape[0]
    low = np.full(n_rows, len(agents))
    high = np.full(n_rows, -1)
    np.minimum.at(low, coo.row, col_owner[coo.col])
    np.maximum.at(high, coo.row, col_owner[coo.col])
    coupling = (high >= 0) & (low != high)
    sense, b = np.asarray(mat.sense), np.asarray(mat.b, dtype=float)
    clabels = np.asarray(mat.clabels)
    if (sense[coupling] != "=").any():
        name, _ = m.constraints.get_label_position(int(clabels[np.flatnonzero(coupling & (sense != "="))[0]]))
        raise GridError(built.origins.get(name, case.system.span), f"'{name}' couples agents with an inequality", "only equality rows may couple agents in a decomposition")
    coupling_rows = np.flatnonzero(coupling)
    coupling_id = np.full(n_rows, -1)
    coupling_id[coupling_rows] = np.arange(len(coupling_rows))
    row_owner = np.where(coupling, -1, np.where(high >= 0, low, 0))  # empty rows go to the first agent

    # which agents take part in each coupling row: its (row, agent) pairs, each once, sorted by row then agent
    n_agents = len(agents)
    in_coupling = coupling[coo.row]
    c_row, c_col, c_val = coupling_id[coo.row[in_coupling]], coo.col[in_coupling], coo.data[in_coupling]
    pair = np.unique(c_row * n_agents + col_owner[c_col])
    pair_row, pair_agent = pair // n_agents, pair % n_agents
    counts = np.bincount(pair_row, minlength=len(coupling_rows))
    # each coupling row's right-hand side goes to the network owner if it takes part, else its first agent
    holder = low[coupling_rows]
    if case.network_owner in agents:
        owner_index = agents.index(case.network_owner)
        with_owner = np.zeros(len(coupling_rows), dtype=bool)
        with_owner[pair_row[pair_agent == owner_index]] = True
        holder = np.where(with_owner, owner_index, holder)

    # every per-agent selection below is a slice of one sort by agent: O(nnz log nnz), not agents x columns
    col_order, col_at = _groups(col_owner, n_agents)
    local = np.empty(len(vlabels), dtype=np.int64)  # each column's position among its agent's columns
    local[col_order] = np.arange(len(vlabels)) - np.repeat(col_at[:-1], np.diff(col_at))
    row_order, row_at = _groups(np.where(coupling, n_agents, row_owner), n_agents)  # coupling rows last, in no agent's group
    entry_order, entry_at = _groups(col_owner[c_col], n_agents)  # coupling entries by the agent of their column
    pair_order, pair_at = _groups(pair_agent, n_agents)

    pos = m.variables.label_index.label_to_pos
    agent_cones: list[list[tuple[str, np.ndarray]]] = [[] for _ in agents]
    for block in built.cones:
        cols = pos[block.rows()]
        who = col_owner[cols]
        if (who != who[:, :1]).any():
            raise GridError(block.span, "a cone couples the variables of several agents", "keep every cone within one agent's variables")
        order, at = _groups(who[:, 0], n_agents)
        for i in np.flatnonzero(np.diff(at)):
            agent_cones[i].append((block.kind, local[cols[order[at[i] : at[i + 1]]]]))
    Q = mat.Q.tocsr() if mat.Q is not None else sp.csr_matrix((len(vlabels), len(vlabels)))
    qc = Q.tocoo()
    if Q.nnz and (col_owner[qc.row] != col_owner[qc.col]).any():
        raise GridError(case.system.span, "a quadratic cost couples agents", "give each cost term the variables of one agent")
    q_order, q_at = _groups(col_owner[qc.row], n_agents)
    c = np.asarray(mat.c, dtype=float)
    lb, ub = np.asarray(mat.lb, dtype=float), np.asarray(mat.ub, dtype=float)

    subproblems = []
    for i, agent in enumerate(agents):
        cols = col_order[col_at[i] : col_at[i + 1]]
        own = row_order[row_at[i] : row_at[i + 1]]
        rows_i = A[own]  # its own rows hold its columns only: their indices renumbered
        ids = pair_row[pair_order[pair_at[i] : pair_at[i + 1]]]
        mine = coupling_rows[ids]
        e = entry_order[entry_at[i] : entry_at[i + 1]]
        q = q_order[q_at[i] : q_at[i + 1]]
        shape = (len(cols), len(cols))
        subproblems.append(
            Subproblem(
                agent=agent,
                vlabels=vlabels[cols],
                A=sp.csr_matrix((rows_i.data, local[rows_i.indices], rows_i.indptr), shape=(len(own), len(cols))),
                b=b[own],
                sense=sense[own],
                lb=lb[cols],
                ub=ub[cols],
                c=c[cols],
                Q=sp.csr_matrix((qc.data[q], (local[qc.row[q]], local[qc.col[q]])), shape=shape),
                cones=tuple(agent_cones[i]),
                rows=ids,
                C=sp.csr_matrix((c_val[e], (np.searchsorted(ids, c_row[e]), local[c_col[e]])), shape=(len(ids), len(cols))),
                d=np.where(holder[ids] == i, b[mine], 0.0),
            )
        )
    return Split(agents, tuple(subproblems), len(coupling_rows), counts, built.offset, coupling_rows, clabels[coupling_rows])


def _groups(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices of ``keys`` (whole numbers in [0, n], n meaning none) sorted by key, stably,
    and where each key's run begins: key ``k``'s indices are ``order[at[k]:at[k + 1]]``, ascending."""
    order = np.argsort(keys, kind="stable")
    return order, np.searchsorted(keys[order], np.arange(n + 1))
