"""`scripts/bench`: the benchmarks behind docs/benchmarks.md (never collected by pytest).

- run.py — the entry point: sizes, scratch databases, the order of the parts, the report
- seed.py — the fast path: template contracts through the services, copied with COPY
- bench_latency.py — ack/completion latency vs a bare bolt app, at 100 and 100,000
  contracts; EXPLAIN of the hot paths on the large database
- bench_throughput.py — committed automatic releases per second vs `pgbench`
  simple-update, 1 and 4 sweeping processes; then the delivery of what they queued
- load.py, slack_process.py, servers.py, bare_app.py — the load generator, the Slack
  emulator in its own process, the server process trees (gunicorn master and ASGI
  workers) and their memory, the baseline app served the same way
- machine.py, report.py — what it ran on; Markdown and PNG charts
"""
