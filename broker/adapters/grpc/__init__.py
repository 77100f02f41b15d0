"""gRPC adapters: the Exchange server and client (mutual TLS) and the local operator API."""
