"""Services: the node's use cases over ports (store, transport, clock, signer)."""
