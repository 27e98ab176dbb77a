"""Generated from protos/sdksign/v1 by `make protos`: do not edit."""
