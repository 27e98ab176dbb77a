"""The Python client's bearer token is the token alone: one given with its scheme ("Bearer
...", which the client sends it with) is refused at once, naming the fix, not sent to be
answered "the credentials are not valid for this service"."""

from __future__ import annotations

import pytest

from sdksign.client import AsyncClient, Client
from sdksign.client._client import bearer_metadata


@pytest.mark.parametrize("token", ["Bearer abc", "bearer abc", "  BEARER  abc "])
async def test_a_token_given_with_its_scheme_is_refused(token: str) -> None:
    fix = "bearer_token is the token alone: leave out 'Bearer ', sent with it"
    with pytest.raises(ValueError, match=fix):
        Client("127.0.0.1:1", bearer_token=token)
    with pytest.raises(ValueError, match=fix):
        AsyncClient("127.0.0.1:1", bearer_token=token)


def test_the_token_alone_is_sent_with_the_scheme() -> None:
    assert bearer_metadata(" abc ") == (("authorization", "Bearer abc"),)
    assert bearer_metadata("Bearerabc") == (("authorization", "Bearer Bearerabc"),)
