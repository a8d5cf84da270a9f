"""Broadcasts: their records in the store and the engine that airs each slot exactly once."""
