"""Cameras: ONVIF control, stream capture and WS-Discovery."""
