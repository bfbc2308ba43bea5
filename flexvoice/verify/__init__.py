"""Two-factor verification codes (/v1/verifications): an I/O-free core with an injected clock
(`core`), its SQLite store with atomic attempt counting (`store`), and the service that sends
codes by SMS or by a call (`service`)."""
