"""The load generator: a separate process that drives one server with picows clients.

``python -m bench.load URL SERVER_PIDS [--cpu-pids PIDS] SCENARIO [options]`` runs one scenario
and prints its figures as one JSON object on stdout (``{"error": ...}`` and exit status 1 when it
failed); ``smoke KEY...`` runs the named scenarios at their smallest, in one process. It reads the
server's CPU time, threads and memory from ``/proc`` itself, at the moments that matter (the
start and end of the timed window, with the connections open).

    echo.py         echo over connections that stay open
    fragmented.py   text messages in 256-byte frames, with or without permessage-deflate
    cycles.py       connection cycles, plain GETs, opening one connection at a time
    connections.py  idle connections, and a new client's echo while they are open
    common.py       opening and closing, the timed window's CPU meter, percentiles
"""
