"""Conference rooms (issue 13): `room` is the state machine without I/O, `service` runs
participants on call legs (music while waiting, PIN is the verb's), with usage and webhooks."""
