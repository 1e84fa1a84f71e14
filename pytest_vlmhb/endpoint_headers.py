"""``endpoint_headers``: extra HTTP headers for an external endpoint behind a
gateway (e.g. Azure's ``api-key``). A value may be ``${ENV_NAME}`` (or hold it
among other text): it is expanded from the environment when the run starts,
and the variable's value is masked like every key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .errors import ServerError

#: ``${NAME}`` inside a header value.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def referenced_env(headers: Mapping[str, str]) -> list[str]:
    """The environment variables the header values name, in order, once each."""
    names = (
        match.group(1) for value in headers.values() for match in ENV_REFERENCE.finditer(value)
    )
    return list(dict.fromkeys(names))


def expand_headers(headers: Mapping[str, str], model: str) -> dict[str, str]:
    """The headers with every ``${NAME}`` replaced by the variable's value; a
    ServerError naming the variable (never a value) when one is unset."""

    def value_of(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if not value:
            raise ServerError(
                f"environment variable {match.group(1)} (named in endpoint_headers of "
                f"model {model!r}) is not set"
            )
        return value

    return {name: ENV_REFERENCE.sub(value_of, value) for name, value in headers.items()}
