"""Metering: price usage events under the account's tariff and export statements for finance.

Modules: `tariffs` (YAML price lists), `events` (parse and check one usage event), `sms`
(segment counting), `destinations` (number classes), `rating` (event -> charge); the usage
store in SQLite: `usage_table` (the table), `store` (import), `statements`, `rerate` and
`records` (their reports and lines); `export` (CSV/JSON), `sink` (the engine's live feed),
`cli` (`flexvoice accounts ...`, `flexvoice usage ...`).
"""
