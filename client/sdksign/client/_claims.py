"""`sdksign sign`'s flags for the optional claims, made from the proto's claim messages.

The proto is the one table both sides read: each optional claim is a field of
MeetingClaims or VideoClaims named after the claim (the server's zoom.rules lists
the same names, and its tests hold that the two agree). A field added there gets its
flag here, --audio-webrtc-mode for audio_webrtc_mode, without an edit: an optional
bool takes 0 or 1, a string its text, a repeated string a comma-separated list.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

from google.protobuf.descriptor import FieldDescriptor

from sdksign.v1 import signature_service_pb2 as pb

# The fields that are no optional claim: the CLI has its own flags for them.
REQUIRED = frozenset({"meeting_number", "session_name", "role"})
Sdk = Literal["meeting", "video"]
Form = Literal["flag", "text", "list"]
MESSAGES: tuple[tuple[Sdk, Any], ...] = (  # Any: upb's Descriptor and protobuf's differ
    ("meeting", pb.MeetingClaims.DESCRIPTOR),
    ("video", pb.VideoClaims.DESCRIPTOR),
)
SDK_NAMES = {"meeting": "Meeting SDK", "video": "Video SDK"}


class ClaimFlag(NamedTuple):
    """An optional claim's flag: its claim (and field) name, its form, the SDKs it is for."""

    claim: str
    form: Form
    sdks: tuple[Sdk, ...]

    @property
    def flag(self) -> str:
        return "--" + self.claim.replace("_", "-")

    @property
    def dest(self) -> str:
        return f"claim_{self.claim}"


def _form(field: FieldDescriptor) -> Form:
    if field.is_repeated:
        return "list"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "flag"
    if field.type == FieldDescriptor.TYPE_STRING:
        return "text"
    raise TypeError(f"no flag for the claim field {field.full_name}: not bool, string or list")


def claim_flags() -> list[ClaimFlag]:
    """Every optional claim of either message, once, in the proto's order (meeting first)."""
    found: dict[str, ClaimFlag] = {}
    for sdk, message in MESSAGES:
        for field in message.fields:
            if field.name in REQUIRED:
                continue
            known = found.get(field.name)
            sdks = (*known.sdks, sdk) if known else (sdk,)
            found[field.name] = ClaimFlag(field.name, _form(field), sdks)
    return list(found.values())


def _help(claim: ClaimFlag) -> str:
    value = {"flag": "0 or 1", "text": "text", "list": "comma-separated, e.g. US,DE"}[claim.form]
    tokens = " and ".join(SDK_NAMES[sdk] for sdk in claim.sdks)
    return f"the {claim.claim} claim ({value}); {tokens} tokens"


def add_claim_options(parser: argparse.ArgumentParser) -> None:
    """A flag for each optional claim, in a group of their own."""
    group = parser.add_argument_group("optional claims (written only when given)")
    for claim in claim_flags():
        metavar = {"flag": "{0,1}", "text": "TEXT", "list": "LIST"}[claim.form]
        group.add_argument(
            claim.flag,
            dest=claim.dest,
            metavar=metavar,
            choices=["0", "1"] if claim.form == "flag" else None,
            help=_help(claim),
        )


def given(args: argparse.Namespace) -> Iterator[tuple[ClaimFlag, str]]:
    """The claim flags given on the command line, with their values."""
    for claim in claim_flags():
        value = getattr(args, claim.dest, None)
        if value is not None:
            yield claim, value


def set_claims(request: pb.SignRequest, args: argparse.Namespace) -> None:
    """Set the claims given in `args` on `request`'s claims; ValueError for a claim its SDK
    does not have."""
    sdk: Sdk = "video" if request.WhichOneof("claims") == "video" else "meeting"
    claims = request.video if sdk == "video" else request.meeting
    for claim, value in given(args):
        if sdk not in claim.sdks:
            other = "--session" if "video" in claim.sdks else "--meeting-number"
            raise ValueError(
                f"{claim.flag} is for {SDK_NAMES[claim.sdks[0]]} tokens ({other}), not "
                f"{SDK_NAMES[sdk]} ones"
            )
        if claim.form == "flag":
            setattr(claims, claim.claim, value == "1")
        elif claim.form == "text":
            setattr(claims, claim.claim, value)
        else:
            getattr(claims, claim.claim).extend(v.strip() for v in value.split(",") if v.strip())
