"""Several nodes as one service (issue 18): live state in Redis, requests sent on to the
owning node, one edge in front."""
