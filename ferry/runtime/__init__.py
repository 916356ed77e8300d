"""Running containers on a host: the Driver contract, the runc driver and the image cache."""
