"""How a setting is declared once: :func:`setting`, and the models built from declarations.

A setting is one field of a pydantic model, declared with :func:`setting`: its name, type,
default, bounds (``ge``, ``gt``, ``le``, ``lt``), environment variable and meaning, e.g.::

    concurrency: int = setting(8, env="TOPO_API_CONCURRENCY", ge=1,
                               meaning="most requests in flight at once")

Pydantic parses and checks the value; :class:`DeclaredSettings` reads the declared
variables from an environment mapping (:meth:`DeclaredSettings.from_env`) and turns a
refused value into a :class:`~topo_pipeline.api.errors.TopoConfigError` of one paragraph
naming the variable, what is allowed and the meaning (:func:`refusal`). The README's
configuration table is checked against :func:`variables` (``test_settings.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from topo_pipeline.api.errors import TopoConfigError

SETTINGS_CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    allow_inf_nan=False,
    # A refused value may be a credential (a webhook URL, a base URL with a password):
    # pydantic's own error text never repeats it; refusal() decides what to quote.
    hide_input_in_errors=True,
)
"""The model configuration of every model of declared settings."""


def setting(default: Any, *, env: str, meaning: str, secret: bool = False, **bounds: Any) -> Any:
    """Declare one setting: a pydantic field that also names its environment variable.

    Args:
        default: the value when the variable is unset or blank.
        env: the environment variable (``TOPO_…``).
        meaning: what it sets, in a phrase; the field's description (Dagster shows it on
            a resource's config) and the end of a refusal's message.
        secret: a credential: never shown in a repr or an error.
        bounds: pydantic's constraints (``ge``, ``gt``, ``le``, ``lt``, ...).
    """
    extra: dict[str, Any] = {"env": env}
    if secret:
        extra["secret"] = True
    return Field(default, description=meaning, repr=not secret, json_schema_extra=extra, **bounds)


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CommaSeparated = Annotated[tuple[str, ...], BeforeValidator(_split_commas)]
"""A setting holding several items, written ``a, b, c`` in its variable."""


def variables(model: type[BaseModel]) -> dict[str, str]:
    """Field name → environment variable, for every field of ``model`` declared with one."""
    found = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("env"), str):
            found[name] = str(extra["env"])
    return found


class DeclaredSettings(BaseModel):
    """A frozen model of declared settings.

    Constructed from Python values (``Settings(timezone="Europe/Berlin")``) or from an
    environment (:meth:`from_env`); either way a refused value raises
    :class:`TopoConfigError` naming its variable. Validators raise ``ValueError`` with the
    rest of the sentence (``f"{value!r} is not a file"``): the variable is put in front.
    """

    model_config = SETTINGS_CONFIG

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise refusal(type(self), error) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings in ``environ`` (default: the process environment).

        A variable that is unset or blank leaves its setting at the default.

        Raises:
            TopoConfigError: naming the variable whose value cannot work.
        """
        env = os.environ if environ is None else environ
        values = {}
        for name, variable in variables(cls).items():
            text = env.get(variable, "").strip()
            if text:
                values[name] = text
        return cls(**values)


def refusal(model: type[BaseModel], error: ValidationError) -> TopoConfigError:
    """``error`` as one paragraph: each refused value's variable, what is allowed, why.

    A value is quoted unless its setting is secret or the message comes from a validator
    (which quotes what is safe to quote itself).
    """
    fields = model.model_fields
    declared = variables(model)
    sentences = []
    for detail in error.errors():
        loc = detail["loc"]
        name = str(loc[0]) if loc else ""
        variable = declared.get(name, name)
        kind = detail["type"]
        if kind == "value_error":
            message = str(detail["ctx"]["error"])
            sentences.append(
                message if not variable or message.startswith(variable) else f"{variable} {message}"
            )
            continue
        field = fields.get(name)
        extra = field.json_schema_extra if field is not None else None
        secret = isinstance(extra, dict) and extra.get("secret") is True
        sentence = f"{variable} {_reason(kind, detail)}"
        if not secret and kind != "extra_forbidden":
            sentence += f", got {_quoted(detail['input'])}"
        if field is not None and field.description:
            sentence += f" — {field.description}"
        sentences.append(sentence)
    return TopoConfigError("; ".join(sentences))


_REASONS = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "date_parsing": "must be a date like 2024-01-01",
    "date_from_datetime_parsing": "must be a date like 2024-01-01",
    "date_from_datetime_inexact": "must be a date like 2024-01-01",
    "date_type": "must be a date like 2024-01-01",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "extra_forbidden": "is not a setting",
}


def _reason(kind: str, detail: Any) -> str:
    template = _REASONS.get(kind)
    if template is None:
        return str(detail["msg"]).replace("Input should", "must", 1)
    bounds = {key: _number(value) for key, value in (detail.get("ctx") or {}).items()}
    return template.format(**bounds)


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _quoted(value: object) -> str:
    return repr(str(value)) if isinstance(value, str | Path) else repr(value)
