"""Zoom's token rules, in one place: claim names, types and bounds, roles, regions, flags.

Minting (_claims) and diagnosis (_diagnose) both read these; neither imports the
other. docs/zoom-sdk-jwt.md explains each rule and the ways real code breaks it.
Adding a claim means editing this module, the proto and the tests.
"""

from __future__ import annotations

from typing import Literal

# Which SDK an app (and its tokens) is for; `kind` in the configuration file.
Sdk = Literal["meeting", "video"]
SDKS: tuple[Sdk, ...] = ("meeting", "video")

# A token's lifetime, exp - iat, in seconds: Zoom refuses less than 30 min and more than 48 h.
MIN_TTL = 1800
MAX_TTL = 172800
# What Sign gives when no lifetime is asked for.
DEFAULT_TTL = 7200

# The roles a token can carry, by name (the policy and the log use these).
ROLES = ("participant", "host")
