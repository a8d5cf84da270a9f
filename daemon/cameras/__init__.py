"""Cameras in the daemon: one monitor per camera, a manager for the set, their states."""
