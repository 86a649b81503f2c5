"""Stand-ins for servers the tests cannot run (e.g. OPA)."""
