"""Reading API answers into ``ferry.model`` types."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import pydantic

from ferry.errors import UnavailableError

_Model = TypeVar("_Model", bound=pydantic.BaseModel)


def parse_model(model: type[_Model], data: Any) -> _Model:
    """Validate one API object; a shape the client cannot read is ``UnavailableError``."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise UnavailableError(
            f"the Ferry API sent a {model.__name__} this client cannot read: "
            f"{exc.errors()[0]['msg'] if exc.errors() else exc}",
            hint="are the CLI and the control plane the same version?",
        ) from exc


def parse_models(model: type[_Model], data: Any) -> list[_Model]:
    if not isinstance(data, list):
        raise UnavailableError(f"the Ferry API sent {type(data).__name__} where a list was due")
    return [parse_model(model, item) for item in data]


def path_segment(value: str) -> str:
    """One URL path segment, escaped so a name can never change the path."""
    return quote(value, safe="")
