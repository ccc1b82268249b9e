"""The load generator: a separate process that drives one server with picows clients.

``python -m bench.load URL SERVER_PIDS SCENARIO [options]`` runs one scenario and prints its
figures as one JSON object on stdout (``{"error": ...}`` and exit status 1 when it failed). It
reads the server's CPU time, threads and memory from ``/proc`` itself, at the moments that
matter (the start and end of the timed window, with the connections open).
"""
