"""The run configuration: its schema, how it is parsed from YAML and --set, and its checks (one module each)."""
