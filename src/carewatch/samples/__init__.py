"""The embedded sample publications: a deterministic world model and writers for every format."""
