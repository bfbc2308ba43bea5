"""Metering: price usage events under the account's tariff and export statements for finance.

Modules: `tariffs` (YAML price lists), `events` (parse and check one usage event), `sms`
(segment counting), `destinations` (number classes), `rating` (event -> charge), `store`
(SQLite: import, statements, rerate), `export` (CSV/JSON), `sink` (the engine's live feed),
`cli` (`flexvoice accounts ...`, `flexvoice usage ...`).
"""
