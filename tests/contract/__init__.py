"""Contract tests: NHS's official MESH client against real server processes."""
