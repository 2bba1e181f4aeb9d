"""Hardware drivers: one package per device, each a ZMQ server speaking robolearn.protocol."""
