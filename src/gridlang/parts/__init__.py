"""A case in parts: one public cloud file and one private file per agent.

The **cloud file** is a case as any other -- system, networks, the network
owner's own assets, markets, games, objective, study -- in which every other
agent is declared by its points of connection only::

    agent dso owns ieee33, substation          # the cloud's own agent (the network owner)
    agent mg1 at b18                           # mg1's assets are in mg1's own file
    market energy among dso, mg1 { fee = 4 $/MWh; payments = nash }

An **agent's file** starts by naming the cloud file it joins (relative to
itself) and what it expects of it -- the horizon, the step, the markets and
games it takes part in -- and holds that agent's profiles, assets, asset
tables and kinds; everything in it belongs to the agent, which may use the
cloud's buses, profiles and kinds by name::

    agent mg1 in "../cloud.grid" { horizon = 24 h; step = 1 h; market = energy }
    profile sun = csv("data/day_profiles.csv", column = "pv")
    pv mg1_pv at b18 { capacity = 900 kW; availability = sun }

``gridlang split case.grid -o DIR`` writes a single-file case in parts
(:mod:`gridlang.parts.split`).  Each side compiles its own part
(:mod:`gridlang.parts.compile`): an agent its file with the public cloud
file, into its subproblem; the cloud the network and the coupling structure.
Coupling rows are named by constraint and coordinates, e.g.
``ieee33-balance_p[bus=b18, time=7]`` or ``energy-balance[agent=mg1, time=7]``,
so the two sides agree on them without either seeing the other's model.
The views each side resolves are described in :mod:`gridlang.parts.format`.
"""
