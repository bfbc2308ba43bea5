"""Call recordings as resources: WAV files under `var/recordings/<account>/`, their rows, the
usage they bill, their webhooks and their retention (issue 13).

`wav` reads and repairs WAV headers (no I/O beyond the one file); `store` keeps the rows in
SQLite; `service` ties a recording's life together (open, pause, close, repair, retention)
with the usage sink and webhooks injected; `node` runs it inside `flexvoice serve`.
"""
