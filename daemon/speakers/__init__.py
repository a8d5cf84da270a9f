"""The speaker fleet: registry, command outbox and dispatcher, zones and alarms."""
