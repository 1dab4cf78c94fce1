"""The workspace's forms, one per kind of document: which fields an agent fills, with their
French labels and help, how a posted form becomes the API's request (the same schemas, so
the same rules), and the validation errors said in French next to the field they concern."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from plume.drafting.schemas import (
    ArreteRequest,
    BulletinArticleRequest,
    CourrierRequest,
    DeliberationRequest,
    SyntheseRequest,
)

Widget = Literal["text", "textarea", "lines", "proxies", "file", "date", "time", "number", "select"]


@dataclass(frozen=True, slots=True)
class FormField:
    """One field: `name` is its path in the request, dotted for nested objects
    (`session.present`, `vote.for`); a `lines` field is a list, one item per line; a
    `proxies` field is the séance's pouvoirs, one « X donne pouvoir à Y » per line; a `file`
    field is read by the page (uploads.py), never sent as such to the API."""

    name: str
    label: str
    widget: Widget = "text"
    required: bool = False
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()

    @property
    def html_id(self) -> str:
        return "champ-" + self.name.replace(".", "-").replace("_", "-")


@dataclass(frozen=True, slots=True)
class KindForm:
    kind: str
    slug: str  # /app/rediger/{slug}
    label: str  # the link's and the page's name: « Arrêté »
    schema: type[BaseModel]
    fields: tuple[FormField, ...] = field(default_factory=tuple)

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


_SUBJECT = FormField(
    "subject", "Objet", required=True, help="En une phrase : de quoi le document traite."
)
_NUMBER = FormField("number", "Numéro", help="Le numéro de l'acte dans votre registre.")
_LEGAL_BASES = FormField(
    "legal_bases",
    "Textes de référence",
    "lines",
    help="Un texte par ligne (code, article) ; Plume complète les visas usuels.",
)
_SIGNATORY = (
    FormField("signatory.name", "Nom du signataire", help="Par exemple : Nathalie Leprévost."),
    FormField("signatory.title", "Qualité du signataire", help="Par exemple : Maire."),
)

FORMS: tuple[KindForm, ...] = (
    KindForm(
        "arrete",
        "arrete",
        "Arrêté",
        ArreteRequest,
        (
            _SUBJECT,
            _NUMBER,
            FormField(
                "context",
                "Faits et motifs",
                "textarea",
                required=True,
                help="Ce qui justifie l'arrêté : les faits, le lieu, les raisons.",
            ),
            FormField(
                "provisions",
                "Dispositions",
                "lines",
                required=True,
                help="Une disposition par ligne ; chacune deviendra un article.",
            ),
            _LEGAL_BASES,
            FormField("start_date", "Date de début", "date"),
            FormField("end_date", "Date de fin", "date"),
            FormField("location", "Lieu", help="Les voies ou lieux concernés."),
            *_SIGNATORY,
        ),
    ),
    KindForm(
        "deliberation",
        "deliberation",
        "Délibération",
        DeliberationRequest,
        (
            _SUBJECT,
            _NUMBER,
            FormField(
                "context",
                "Exposé",
                "textarea",
                required=True,
                help="Ce que le rapporteur présente au conseil municipal.",
            ),
            FormField(
                "decisions",
                "Décisions",
                "lines",
                required=True,
                help="Une décision par ligne ; chacune deviendra un article.",
            ),
            FormField("session_date", "Date de la séance", "date"),
            FormField("session.convocation_date", "Date de la convocation", "date"),
            FormField("session.start_time", "Heure d'ouverture de la séance", "time"),
            FormField("session.members_in_office", "Conseillers en exercice", "number"),
            FormField("session.present", "Conseillers présents", "number"),
            FormField(
                "session.represented",
                "Conseillers représentés",
                "number",
                help="Les absents qui ont donné pouvoir à un conseiller présent.",
            ),
            FormField(
                "session.proxies",
                "Pouvoirs",
                "proxies",
                help="Un pouvoir par ligne, sous la forme « Jeanne Dupont donne pouvoir à "
                "Paul Martin » ; autant de lignes que de conseillers représentés.",
            ),
            FormField("session.secretary", "Secrétaire de séance"),
            FormField(
                "session.vote_mode",
                "Mode de scrutin",
                "select",
                choices=(
                    ("main_levee", "À main levée"),
                    ("scrutin_public", "Scrutin public"),
                    ("scrutin_secret", "Scrutin secret"),
                ),
            ),
            FormField("vote.for", "Voix pour", "number"),
            FormField("vote.against", "Voix contre", "number"),
            FormField("vote.abstentions", "Abstentions", "number"),
            _LEGAL_BASES,
            FormField("rapporteur", "Rapporteur"),
            *_SIGNATORY,
        ),
    ),
    KindForm(
        "courrier",
        "courrier",
        "Courrier",
        CourrierRequest,
        (
            _SUBJECT,
            FormField("recipient.name", "Destinataire", required=True, help="Nom et prénom."),
            FormField("recipient.address", "Adresse du destinataire", "textarea"),
            FormField(
                "points",
                "Points à aborder",
                "lines",
                required=True,
                help="Un point par ligne ; chacun deviendra une phrase ou un paragraphe.",
            ),
            FormField(
                "tone",
                "Ton",
                "select",
                choices=(("formel", "Formel"), ("cordial", "Cordial")),
            ),
            *_SIGNATORY,
        ),
    ),
    KindForm(
        "bulletin_article",
        "article-de-bulletin",
        "Article de bulletin",
        BulletinArticleRequest,
        (
            _SUBJECT,
            FormField(
                "key_points",
                "Points clés",
                "lines",
                required=True,
                help="Un point par ligne : ce que les habitants doivent retenir.",
            ),
            FormField(
                "length_words", "Longueur (en mots)", "number", help="Entre 30 et 3 000 mots."
            ),
            FormField("audience", "Public visé", help="Par exemple : les familles, les aînés."),
        ),
    ),
    KindForm(
        "synthese",
        "synthese",
        "Synthèse",
        SyntheseRequest,
        (
            FormField(
                "source_text",
                "Texte à synthétiser",
                "textarea",
                help="Collez le texte (compte rendu, rapport), ou joignez-le en fichier "
                "ci-dessous : Plume en fait la synthèse.",
            ),
            FormField(
                "fichier",
                "Fichier à synthétiser",
                "file",
                help="Un fichier PDF, ODT, DOCX ou TXT de 10 Mo au plus, dont le texte peut "
                "être sélectionné (un document numérisé n'en a pas).",
            ),
            FormField(
                "format",
                "Forme",
                "select",
                choices=(("resume", "Résumé"), ("points_cles", "Points clés")),
            ),
            FormField(
                "target_words", "Longueur visée (en mots)", "number", help="Entre 30 et 5 000."
            ),
        ),
    ),
)
BY_SLUG = {form.slug: form for form in FORMS}
BY_KIND = {form.kind: form for form in FORMS}


# -- from the posted form to the request ---------------------------------------------------

# « Jeanne Dupont donne pouvoir à Paul Martin » (« a » without its accent, any case).
_PROXY = re.compile(r"(?P<grantor>.+?)\s+donne\s+pouvoir\s+(?:à|a)\s+(?P<holder>.+)", re.I)


class UnreadableField(ValueError):
    """A field's text the form cannot turn into the API's value, said in French."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _proxies(form_field: FormField, raw: str) -> list[dict[str, str]]:
    proxies = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        found = _PROXY.fullmatch(line.strip())
        if found is None:
            raise UnreadableField(
                form_field.name,
                f"Ligne {number} : écrivez « Prénom Nom donne pouvoir à Prénom Nom ».",
            )
        proxies.append({"grantor": found["grantor"].strip(), "holder": found["holder"].strip()})
    return proxies


def _value(form_field: FormField, raw: str) -> Any:
    if form_field.widget == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if form_field.widget == "proxies":
        return _proxies(form_field, raw)
    if form_field.widget == "number":
        try:
            return int(raw.strip())
        except ValueError:
            return raw  # the schema says it is not a number
    return raw


def request_of(form: KindForm, posted: Mapping[str, str]) -> dict[str, Any]:
    """The API's request body from the posted fields: empty fields are left out (absent,
    as an API client would), dotted names become nested objects."""
    body: dict[str, Any] = {"kind": form.kind}
    for form_field in form.fields:
        raw = posted.get(form_field.name, "")
        if not raw.strip() or form_field.widget == "file":
            continue
        target = body
        *parents, leaf = form_field.name.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = _value(form_field, raw)
    return body


def read(form: KindForm, posted: Mapping[str, str]) -> tuple[BaseModel | None, dict[str, str]]:
    """The posted form as the API's request, or its errors by field name (`""`: the form)."""
    for name, value in posted.items():
        if "\x00" in value:  # PostgreSQL's text cannot hold it
            return None, {name: "Ce champ contient un caractère nul, qui n'est pas admis."}
    try:
        body = request_of(form, posted)
    except UnreadableField as error:
        return None, {error.name: error.message}
    return validate(form, body)


def validate(form: KindForm, body: dict[str, Any]) -> tuple[BaseModel | None, dict[str, str]]:
    """The request as the API would read it, or the errors by field name (`""`: the form)."""
    try:
        return form.schema.model_validate(body), {}
    except ValidationError as error:
        return None, field_errors(form, error)


# -- from the request to the form (examples, re-display) -----------------------------------


def values_of(form: KindForm, body: Mapping[str, Any]) -> dict[str, str]:
    """The fields' text from a request body (the inverse of `request_of`)."""
    values: dict[str, str] = {}
    for form_field in form.fields:
        value: Any = body
        for part in form_field.name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            continue
        if form_field.widget == "proxies":
            lines = [f"{p['grantor']} donne pouvoir à {p['holder']}" for p in value]
            values[form_field.name] = "\n".join(lines)
        else:
            values[form_field.name] = "\n".join(value) if isinstance(value, list) else str(value)
    return values


@cache
def examples() -> dict[str, dict[str, Any]]:
    """One example request per kind, shipped with the package (the « Exemple » button)."""
    text = resources.files("plume.workspace").joinpath("data/examples.json").read_text("utf-8")
    loaded: dict[str, dict[str, Any]] = json.loads(text)
    return loaded


# -- errors in French ----------------------------------------------------------------------


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "Ce champ est obligatoire."
    if kind == "string_too_short":
        return "Ce champ est obligatoire."
    if kind == "too_short":
        return "Indiquez au moins un élément (un par ligne)."
    if kind == "string_too_long":
        return f"Texte trop long : {ctx.get('max_length')} caractères au plus."
    if kind == "too_long":
        return f"Trop d'éléments : {ctx.get('max_length')} au plus."
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "Indiquez un nombre entier."
    if kind in ("greater_than_equal", "greater_than"):
        return f"Indiquez un nombre d'au moins {ctx.get('ge', ctx.get('gt'))}."
    if kind in ("less_than_equal", "less_than"):
        return f"Indiquez un nombre d'au plus {ctx.get('le', ctx.get('lt'))}."
    if kind.startswith("date") or kind.startswith("time"):
        return "Date ou heure invalide."
    if kind in ("literal_error", "enum"):
        return "Choisissez une des valeurs proposées."
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return "Valeur invalide."


def _field_of(form: KindForm, loc: tuple[Any, ...]) -> str:
    """The form field an error's location points at: the field itself, the first field of
    the object it names (`recipient` → `recipient.name`), or its nearest named parent."""
    names = form.field_names()
    parts = [str(part) for part in loc if isinstance(part, str)]
    while parts:
        dotted = ".".join(parts)
        if dotted in names:
            return dotted
        inside = [name for name in names if name.startswith(dotted + ".")]
        if inside:
            return inside[0]
        parts.pop()
    return ""


def field_errors(form: KindForm, error: ValidationError) -> dict[str, str]:
    """The first error of each field, in French; errors of no field go under `""`."""
    found: dict[str, str] = {}
    for item in error.errors(include_url=False):
        found.setdefault(_field_of(form, tuple(item["loc"])), _message(item))
    return found
