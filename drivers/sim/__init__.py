"""Simulated peers for `loacam demo` and the tests: a private broker, cameras, speakers."""
