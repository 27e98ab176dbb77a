"""Client and AsyncClient cannot drift: the same methods, parameters, defaults, annotations and
docstrings, and each sign_*/verify takes exactly the parameters of the request builder it calls."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.message import Message

from sdksign.client import AsyncClient, Client, Role, _types
from sdksign.v1 import signature_service_pb2 as pb

# Each pair does the same thing: only the protocol's name differs.
CONTEXT_MANAGERS = {"__enter__": "__aenter__", "__exit__": "__aexit__"}
# The method that builds its request with each builder, and so takes the builder's parameters.
BUILDERS: dict[str, Callable[..., Any]] = {
    "sign_meeting": _types.meeting_request,
    "sign_video": _types.video_request,
    "verify": _types.verify_request,
}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name == "__init__")
    }


def signature(function: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(function, eval_str=True)


def parameters_without_self(function: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in signature(function).parameters.values() if p.name != "self"]


def first_line(function: Callable[..., Any]) -> str:
    return (inspect.getdoc(function) or "").partition("\n")[0]


def test_both_clients_have_the_same_public_methods() -> None:
    assert public_methods(Client) == public_methods(AsyncClient)
    for sync_name, async_name in CONTEXT_MANAGERS.items():
        assert hasattr(Client, sync_name) and hasattr(AsyncClient, async_name)


@pytest.mark.parametrize("name", sorted(public_methods(AsyncClient)))
def test_each_method_has_the_same_signature_and_docstring(name: str) -> None:
    sync, asynchronous = getattr(Client, name), getattr(AsyncClient, name)
    assert signature(sync) == signature(asynchronous)  # parameters, defaults, annotations, return
    assert first_line(sync) == first_line(asynchronous) != ""
    if name != "__init__":
        assert inspect.iscoroutinefunction(asynchronous) and not inspect.iscoroutinefunction(sync)


@pytest.mark.parametrize(("sync_name", "async_name"), CONTEXT_MANAGERS.items())
def test_context_managers_match(sync_name: str, async_name: str) -> None:
    sync, asynchronous = getattr(Client, sync_name), getattr(AsyncClient, async_name)
    assert parameters_without_self(sync) == parameters_without_self(asynchronous)
    assert signature(sync).return_annotation == signature(asynchronous).return_annotation
    assert inspect.iscoroutinefunction(asynchronous) and not inspect.iscoroutinefunction(sync)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_methods_take_their_request_builders_parameters(name: str) -> None:
    builder = BUILDERS[name]
    assert parameters_without_self(getattr(Client, name)) == parameters_without_self(builder)


# The proto message each method's parameters come from, beside SignRequest's app and ttl.
MESSAGES: dict[str, tuple[type[Message], set[str]]] = {
    "sign_meeting": (pb.MeetingClaims, {"app", "ttl", "start_as", "on_behalf_of"}),
    "sign_video": (pb.VideoClaims, {"app", "ttl"}),
    "verify": (pb.VerifyRequest, set()),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_parameter_is_a_field_of_the_request(name: str) -> None:
    # A field added to the proto reaches callers at once through sign(SignRequest); a
    # keyword for it here is a choice of the client's API, made when it is wanted.
    message, request_fields = MESSAGES[name]
    fields = {f.name for f in message.DESCRIPTOR.fields} | request_fields
    assert {p.name for p in parameters_without_self(getattr(Client, name))} <= fields


def test_today_every_field_has_its_keyword() -> None:
    """The claims as they are today are all offered as keywords (a field added later may not be)."""
    known = {
        "sign_meeting": {
            "meeting_number",
            "role",
            "video_webrtc_mode",
            "app",
            "ttl",
            "start_as",
            "on_behalf_of",
        },
        "sign_video": {
            "session_name",
            "role",
            "user_identity",
            "session_key",
            "geo_regions",
            "telemetry_tracking_id",
            "cloud_recording_option",
            "cloud_recording_election",
            "video_webrtc_mode",
            "audio_webrtc_mode",
            "app",
            "ttl",
        },
        "verify": {"token", "app", "expected_meeting_number"},
    }
    for name, keywords in known.items():
        assert {p.name for p in parameters_without_self(getattr(Client, name))} == keywords


def test_video_flags_reach_the_request_and_none_leaves_them_out() -> None:
    claims = _types.video_request(
        "s",
        Role.HOST,
        cloud_recording_option=True,
        cloud_recording_election=False,
        audio_webrtc_mode=True,
        telemetry_tracking_id="t-1",
    ).video
    assert claims.cloud_recording_option and claims.audio_webrtc_mode
    assert claims.HasField("cloud_recording_election") and not claims.cloud_recording_election
    assert not claims.HasField("video_webrtc_mode")
    assert claims.telemetry_tracking_id == "t-1"
