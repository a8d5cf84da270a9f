"""HTTP routers of the API (/api/v1) and the public probes."""
