"""A sync client that is not a browser: the protocol of apps.sync.sockets from the device's side."""
