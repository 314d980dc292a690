"""Test support shared by end-to-end and contract tests.

- ``certs``: throwaway CA + server/client certificates (PEM files).
- ``server``: run a server as a real subprocess (start/stop/kill/restart, health wait).
- ``nhs_suite``: fetch, prepare and run NHS's mesh-client integration suite.
- ``targets``: how to start mesh-sandbox or Mailroom for the contract tests.
- ``mesh_sandbox_launcher`` / ``ping_server``: scripts run in *other* interpreters.
"""
