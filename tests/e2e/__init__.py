"""End-to-end tests: a real Mailroom server process over loopback HTTP(S)."""
