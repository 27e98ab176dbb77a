"""The configuration: from a TOML file, the environment or development apps to a Config.

Knows nothing of gRPC. May import zoom, errors, access (the policy a file declares) and
observe (to count a Vault's errors).
"""
