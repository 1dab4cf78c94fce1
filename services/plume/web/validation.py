"""French messages for request validation errors, one per offending field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from plume.errors import FieldError, InvalidRequest

_MESSAGES: dict[str, str] = {
    "missing": "Ce champ est obligatoire.",
    "extra_forbidden": "Ce champ n'est pas reconnu.",
    "string_type": "Doit être une chaîne de caractères.",
    "int_type": "Doit être un nombre entier.",
    "int_parsing": "Doit être un nombre entier.",
    "int_from_float": "Doit être un nombre entier.",
    "float_type": "Doit être un nombre.",
    "float_parsing": "Doit être un nombre.",
    "decimal_type": "Doit être un nombre.",
    "decimal_parsing": "Doit être un nombre.",
    "bool_type": "Doit valoir true ou false.",
    "bool_parsing": "Doit valoir true ou false.",
    "list_type": "Doit être une liste.",
    "dict_type": "Doit être un objet JSON.",
    "model_type": "Doit être un objet JSON.",
    "model_attributes_type": "Doit être un objet JSON.",
    "uuid_type": "Doit être un identifiant (UUID).",
    "uuid_parsing": "Doit être un identifiant (UUID).",
    "datetime_type": "Doit être une date et heure RFC 3339 (ex. 2026-12-31T23:59:00+01:00).",
    "datetime_parsing": "Doit être une date et heure RFC 3339 (ex. 2026-12-31T23:59:00+01:00).",
    "datetime_from_date_parsing": "Doit être une date et heure RFC 3339.",
    "timezone_aware": "La date doit préciser son fuseau horaire (ex. +01:00).",
    "date_type": "Doit être une date (AAAA-MM-JJ).",
    "date_parsing": "Doit être une date (AAAA-MM-JJ).",
    "date_from_datetime_parsing": "Doit être une date (AAAA-MM-JJ).",
    "json_invalid": "Le corps de la requête n'est pas un JSON valide.",
    "json_type": "Le corps de la requête n'est pas un JSON valide.",
    "string_pattern_mismatch": "Le format de cette valeur est incorrect.",
    "url_parsing": "Doit être une adresse web valide.",
    "finite_number": "Doit être un nombre fini.",
}


_TYPE_NAME = re.compile(r"^(str|int|float|bool|bytes|none|[A-Z]\w*|\w+\[.*\])$")

# Tags of discriminated unions, which pydantic puts in the location of a member's errors.
_UNION_TAGS = frozenset({"arrete", "deliberation", "courrier", "bulletin_article", "synthese"})


def _field_path(loc: Sequence[int | str], kind: str = "") -> str:
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        return ".".join(str(p) for p in parts) + ("." if parts else "") + "kind"
    if parts and parts[0] in _UNION_TAGS:
        parts = parts[1:]
    # Pydantic names the member of a union it tried ('str', 'list[TextPart]'): not a field.
    parts = [p for p in parts if isinstance(p, int) or not _TYPE_NAME.match(p)]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "body"


def _message(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "union_tag_invalid":
        return f"Type non reconnu ; valeurs possibles : {ctx.get('expected_tags', '')}."
    if kind == "union_tag_not_found":
        return "Ce champ est obligatoire."
    if kind == "value_error":
        # Our validators raise ValueError with a French sentence.
        return str(ctx.get("error") or error.get("msg", "Valeur invalide.")).removeprefix(
            "Value error, "
        )
    if kind == "decimal_max_digits":
        return f"Doit compter au plus {ctx.get('max_digits')} chiffres."
    if kind == "decimal_whole_digits":
        return f"Doit compter au plus {ctx.get('whole_digits')} chiffres avant la virgule."
    if kind == "decimal_max_places":
        return f"Doit compter au plus {ctx.get('decimal_places')} décimales."
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        if minimum == 1:
            return "Ne peut pas être vide."
        return f"Doit contenir au moins {minimum} caractères."
    if kind == "string_too_long":
        return f"Doit contenir au plus {ctx.get('max_length')} caractères."
    if kind == "too_short":
        return f"Doit contenir au moins {ctx.get('min_length')} élément(s)."
    if kind == "too_long":
        return f"Doit contenir au plus {ctx.get('max_length')} éléments."
    if kind in {"enum", "literal_error"}:
        expected = str(ctx.get("expected", "")).replace("' or '", "' ou '")
        return f"Valeur non reconnue ; valeurs possibles : {expected}."
    if kind == "greater_than":
        return f"Doit être strictement supérieur à {ctx.get('gt')}."
    if kind == "greater_than_equal":
        return f"Doit être supérieur ou égal à {ctx.get('ge')}."
    if kind == "less_than":
        return f"Doit être strictement inférieur à {ctx.get('lt')}."
    if kind == "less_than_equal":
        return f"Doit être inférieur ou égal à {ctx.get('le')}."
    return "Valeur invalide."


_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type", "model_type", "model_class"})
_NOT_JSON = (
    "Le corps de la requête doit être un objet JSON, envoyé avec l'en-tête "
    "« Content-Type: application/json »."
)


def invalid_request_from(errors: Sequence[Any]) -> InvalidRequest:
    if any(e.get("type") in {"json_invalid", "json_type"} for e in errors) or any(
        tuple(e.get("loc", ())) == ("body",) and e.get("type") in _NOT_AN_OBJECT for e in errors
    ):
        return InvalidRequest(_NOT_JSON, errors=[FieldError(field="body", message=_NOT_JSON)])
    field_errors = [
        FieldError(field=_field_path(e["loc"], str(e.get("type", ""))), message=_message(e))
        for e in errors
    ]
    if len(field_errors) == 1:
        only = field_errors[0]
        detail = f"Le champ « {only.field} » est invalide : {only.message}"
    else:
        names = ", ".join(f"« {e.field} »" for e in field_errors)
        detail = f"Plusieurs champs sont invalides : {names}."
    return InvalidRequest(detail, errors=field_errors)
