"""Client tests run against a real gateway (its own thread) on real PostgreSQL; see fixtures/gateway_threads.py."""

from fixtures.gateway_threads import gateway_db, threaded_gateway

__all__ = ["gateway_db", "threaded_gateway"]
