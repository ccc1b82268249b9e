"""Side-by-side benchmarks of Flask-Duplex and its peers: ``make bench``.

Benchmarks are not tests: figures are reported, never asserted. A run goes one way:

    contenders.py   which library on which server, and its command line
    scenarios.py    what is measured: echo, fragmented messages, the connection cycle beside a
                    plain GET, opening one connection, idle connections
    runner.py       for each contender: start its server (process.py), run each scenario in a
                    separate load generator process (load/), collect the figures
    record.py       the figures, the machine and the versions -> results/latest.json
    report/         -> Markdown tables; plot.py -> PNG; docs.py -> docs/benchmarks.md
    fanout.py       broadcast to 1,000 connections; floor.py: what a held plain request costs

The servers (servers/) and the load generator (load/) run as separate processes, each pinned to
its own core where the machine allows, so the load generator never competes with the server it
measures. The load generator reads the server's CPU time, threads and memory from ``/proc``
(procfs.py) at the moments that matter: the start and end of a timed window, or with every
connection open. Costs per operation are the server's CPU time (user plus system, over its whole
process tree) in the timed window divided by the operations completed in it.

Everything runs from the bench venv (``make bench-env``), which holds the peers; the package
itself never depends on them.
"""
