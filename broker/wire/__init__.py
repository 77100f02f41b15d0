"""The wire formats: the one mapping module between protobuf bytes and domain objects."""
