"""Device I/O for loacam: cameras, speakers, the MQTT link and the simulators."""
