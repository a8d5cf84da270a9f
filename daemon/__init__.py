"""loacam daemon: CLI, configuration, supervisor, store, API and web console."""
