"""sdksign.client: call SignatureService from Python (needs only grpcio, protobuf and
googleapis-common-protos).

from sdksign.client import Client, Role

with Client("localhost:50051") as client:
    signed = client.sign_meeting("94843468909", Role.HOST)
    print(client.verify(signed.token).explain())
"""

from ._client import DEFAULT_TARGET, AsyncClient, Client
from ._errors import FieldViolation, SdkSignError
from ._grants import BeganGrant, GrantInfo, GrantPage
from ._types import Problem, Role, SignedToken, Verification

__all__ = [
    "DEFAULT_TARGET",
    "AsyncClient",
    "BeganGrant",
    "Client",
    "FieldViolation",
    "GrantInfo",
    "GrantPage",
    "Problem",
    "Role",
    "SdkSignError",
    "SignedToken",
    "Verification",
]
