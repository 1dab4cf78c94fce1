"""Where a text names a resident: people (a French named-entity model, and the civilities
that announce a name), postal addresses, phones, e-mails, NIR, IBAN, SIRET, dates of birth
and vehicle plates (patterns, each number validated by its checksum).

spaCy is used directly, not through Presidio: Presidio's analyzer brings its own registry
of English recognisers, a second model configuration and tldextract (which reaches for the
public-suffix list on the network) for what is, here, one NER component and a dozen
patterns. Only the model's `tok2vec` and `ner` run: the parser, lemmatizer and morphologizer
cost three quarters of the time and find nothing this needs.

The model is loaded once per process, lazily, under a lock (threads detect concurrently).
Detection is CPU work: callers run it in a worker thread (`plume.privacy.pseudonyms`).

What the model finds in a text is remembered by the text's digest (the people's offsets, never
the text): a conversation sends its system prompt and its history again with every turn, and
the model, a fifth of a chat completion's CPU, then reads only the new message. Only the
model's reading is remembered; the patterns, the checks around the model's findings and the
commune's protected names run on every call.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import phonenumbers
from stdnum import iban as std_iban
from stdnum.fr import nir as std_nir
from stdnum.fr import siret as std_siret

from plume.runtime.memory import release_freed_memory

EntityType = Literal[
    "PERSONNE",
    "ADRESSE",
    "TELEPHONE",
    "EMAIL",
    "NIR",
    "IBAN",
    "SIRET",
    "DATE_NAISSANCE",
    "PLAQUE",
]
ENTITY_TYPES: tuple[EntityType, ...] = (
    "PERSONNE",
    "ADRESSE",
    "TELEPHONE",
    "EMAIL",
    "NIR",
    "IBAN",
    "SIRET",
    "DATE_NAISSANCE",
    "PLAQUE",
)
MODEL_NAME = "fr_core_news_sm"
# The model reads at most this many characters at once; a longer text is cut after a line, a
# sentence or a word. Measured on a 466 KB source: 8.7 s in pieces of 100,000 characters,
# 7.1 s of 20,000, 5.6 s of 5,000, 6.0 s of 2,000.
_MODEL_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class Entity:
    start: int
    end: int
    type: EntityType
    text: str


# -- the model ---------------------------------------------------------------------------

_model: Any = None
_model_lock = threading.Lock()
_UNUSED_COMPONENTS = (
    "tok2vec",
    "parser",
    "lemmatizer",
    "morphologizer",
    "attribute_ruler",
    "senter",
)
# The model's findings by text digest, the least recently used forgotten first: offsets only,
# a few hundred kilobytes at most.
MODEL_MEMORY = 4096
_model_memory: OrderedDict[bytes, tuple[tuple[int, int], ...]] = OrderedDict()
_model_memory_lock = threading.Lock()


def model() -> Any:
    """The French NER pipeline, loaded on first use, once per process."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                import spacy

                # The NER alone: its model embeds its own token vectors, and the
                # pipeline's shared `tok2vec` only fed the excluded components (it was
                # half of the reading time of a short text, for the same entities).
                _model = spacy.load(MODEL_NAME, exclude=list(_UNUSED_COMPONENTS))
                # The load's temporaries, freed, back to the system (≈ 12 MB a worker).
                release_freed_memory()
    return _model


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """The text in pieces the model reads, cut after a paragraph or a line when possible."""
    start = 0
    while start < len(text):
        end = min(len(text), start + _MODEL_CHUNK)
        if end < len(text):
            for separator in ("\n", ". ", " "):
                cut = text.rfind(separator, start + _MODEL_CHUNK // 2, end)
                if cut > 0:
                    end = cut + len(separator)
                    break
        yield start, text[start:end]
        start = end


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def model_has_read(text: str) -> bool:
    """Whether detecting in `text` needs no model reading: what remains are patterns, quick
    on a short text."""
    if not any(ch.isalpha() for ch in text):
        return True
    with _model_memory_lock:
        return _digest(text) in _model_memory


def read(texts: Iterable[str]) -> None:
    """Have the model read `texts` now, its findings remembered: what `detect` then does on
    them is patterns alone. Needs no request's pseudonyms, so several threads may read at
    once (spaCy's inference lets the other run part of the time)."""
    for text in texts:
        _model_people(text)


def _model_people(text: str) -> tuple[tuple[int, int], ...]:
    """Where the model reads a person's name in `text` (start and end offsets)."""
    if not any(ch.isalpha() for ch in text):
        return ()
    digest = _digest(text)
    with _model_memory_lock:
        known = _model_memory.get(digest)
        if known is not None:
            _model_memory.move_to_end(digest)
            return known
    pieces = list(_chunks(text))
    found = tuple(
        (offset + ent.start_char, offset + ent.end_char)
        for (offset, _), doc in zip(pieces, model().pipe(p for _, p in pieces), strict=True)
        for ent in doc.ents
        if ent.label_ == "PER"
    )
    with _model_memory_lock:
        _model_memory[digest] = found
        if len(_model_memory) > MODEL_MEMORY:
            _model_memory.popitem(last=False)
    return found


# -- words ---------------------------------------------------------------------------------

_UPPER = "A-ZÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸ"
_LOWER = "a-zàâäçéèêëîïôöùûüÿœæ"
_NAME_WORD = rf"[{_UPPER}][{_LOWER}{_UPPER}]*(?:[-'’][{_UPPER}][{_LOWER}{_UPPER}]*)*"
_LOWER_WORD = rf"[{_LOWER}][{_LOWER}]*(?:-[{_LOWER}]+)*"
_PARTICLE = r"(?:de|du|des|d'|d’|de la|de La|van|von|van der|ben|el|al|Le|La|Du|De|Di|Da)"
# A name after a civility: words with capitals, particles between them.
_CAPITAL_NAME = rf"{_NAME_WORD}(?:\s+(?:{_PARTICLE}\s*)?{_NAME_WORD}){{0,4}}"
_CIVILITY = r"\b(?:M\.|MM\.|Mme|Mmes|Mlle|Mlles|Me|Dr|Madame|Monsieur|Mademoiselle|Maître|Docteur)"

# What follows « M. », « Madame » and is a function, not a name.
_FUNCTIONS = {
    "le",
    "la",
    "les",
    "l",
    "maire",
    "adjoint",
    "adjointe",
    "préfet",
    "préfète",
    "président",
    "présidente",
    "directeur",
    "directrice",
    "secrétaire",
    "conseiller",
    "conseillère",
    "sous-préfet",
    "député",
    "sénateur",
    "trésorier",
    "receveur",
    "comptable",
    "chef",
    "commissaire",
    "juge",
    "procureur",
    "lieutenant",
    "capitaine",
    "colonel",
    "général",
    "notaire",
    "et",
    "ou",
    "à",
    "au",
    "aux",
    "de",
    "du",
    "des",
    "un",
    "une",
    "votre",
    "notre",
    "son",
    "sa",
    "ce",
    "cette",
}
# Words a model may tag as a person that name an office, a body or a text.
_NOT_PEOPLE = {
    "maire",
    "préfet",
    "république",
    "conseil",
    "municipal",
    "commune",
    "mairie",
    "cgct",
    "code",
    "article",
    "monsieur",
    "madame",
    "considérant",
    "vu",
    "arrête",
    "délibère",
    "objet",
    "tribunal",
    "état",
    "etat",
    "dgfip",
    "insee",
    "caf",
    "sdis",
    "epci",
}

_VOIE = (
    r"(?i:rue|avenue|av\.|boulevard|bd|place|chemin|impasse|allée|allées|route|quai|cours|"
    r"square|lotissement|résidence|hameau|sentier|voie|passage|ruelle|faubourg|cité|clos|"
    r"rond-point|esplanade|parvis|promenade|traverse|venelle|lieu-dit)"
)
_LINK = r"(?:de la|de l['’]|des|du|de|la|le|les|d['’]|l['’]|aux|à la|sur|en)"
_STREET_WORD = rf"(?:[{_UPPER}0-9][\w'’]*(?:-[\w'’]+)*)"
# A number, a kind of street, its name — capitalised words and the links between them, or
# one lowercase word when the request is typed in lowercase —, then maybe a postcode and city.
_ADDRESS = re.compile(
    rf"\b\d{{1,4}}(?:\s?(?:bis|ter|quater|[A-Da-d]))?,?\s+{_VOIE}\s+"
    rf"(?:{_LINK}\s*)?"
    rf"(?:{_STREET_WORD}(?:[ -](?:{_LINK}\s*)?{_STREET_WORD}){{0,5}}|[{_LOWER}][\w'’-]*)"
    rf"(?:,?\s+\d{{5}}\s+[{_UPPER}][\w'’]*(?:-[\w'’]+)*(?:\s[{_UPPER}][\w'’-]*){{0,2}})?",
)
_VOIE_BEFORE = re.compile(
    rf"\b{_VOIE}\s+(?:(?:de|du|des|la|le|les|l'|d'|l’|d’)\s*)*$", re.IGNORECASE
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
_NIR = re.compile(r"\b[12]\s?\d{2}\s?\d{2}\s?(?:\d{2}|2[AB])\s?\d{3}\s?\d{3}\s?\d{2}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_SIRET = re.compile(r"\b\d{3}\s?\d{3}\s?\d{3}\s?\d{5}\b")
_PLATE = re.compile(r"\b[A-HJ-NP-TV-Z]{2}[- ]\d{3}[- ][A-HJ-NP-TV-Z]{2}\b")
_MONTHS = (
    r"(?:janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|"
    r"novembre|décembre|decembre)"
)
_DATE = rf"(?:\d{{1,2}}(?:er)?\s+{_MONTHS}\s+\d{{4}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}})"
_BIRTH = re.compile(
    rf"(?:\bné(?:e|s|es)?\s+le\s+|\bdate\s+de\s+naissance\s*:?\s*|\bnaissance\s*:\s*)"
    rf"({_DATE})",
    re.IGNORECASE,
)
_CIVILITY_NAME = re.compile(rf"{_CIVILITY}\s+(?P<name>{_CAPITAL_NAME})")
# Typed in lowercase: « monsieur dupont », « mme martin ».
_CIVILITY_LOWER = re.compile(
    r"\b(?:m\.|mme|madame|monsieur|mademoiselle)\s+"
    rf"(?P<name>(?:(?:de|du|le)\s+)?{_LOWER_WORD})"
)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n«\"]\s*|^\s+)$")
_LEGAL = re.compile(r"\b(?:articles?|art\.|loi|décret|arrêté|L\.|R\.|D\.)\s", re.IGNORECASE)


def fold(text: str) -> str:
    """Casefolded, without accents: how names are compared."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).strip()


# Compared folded, as names are.
_FUNCTION_WORDS = frozenset(fold(word) for word in _FUNCTIONS)
_NOT_PEOPLE_WORDS = frozenset(fold(word) for word in _NOT_PEOPLE)


# -- recognisers -------------------------------------------------------------------------


def _emails(text: str) -> Iterator[Entity]:
    for m in _EMAIL.finditer(text):
        yield Entity(m.start(), m.end(), "EMAIL", m.group())


def _phones(text: str) -> Iterator[Entity]:
    for match in phonenumbers.PhoneNumberMatcher(text, "FR", leniency=phonenumbers.Leniency.VALID):
        yield Entity(match.start, match.end, "TELEPHONE", match.raw_string)


def _checked(pattern: re.Pattern[str], kind: EntityType, valid: Any, text: str) -> Iterator[Entity]:
    for m in pattern.finditer(text):
        if valid(m.group()):
            yield Entity(m.start(), m.end(), kind, m.group())


def _plates(text: str) -> Iterator[Entity]:
    for m in _PLATE.finditer(text):
        yield Entity(m.start(), m.end(), "PLAQUE", m.group())


def _births(text: str) -> Iterator[Entity]:
    for m in _BIRTH.finditer(text):
        yield Entity(m.start(1), m.end(1), "DATE_NAISSANCE", m.group(1))


def _addresses(text: str) -> Iterator[Entity]:
    """A numbered address (« 12 rue Jean Jaurès, 76000 Rouen »); a street without a number
    (« rue Victor Hugo ») names a place, not a resident, and is left alone."""
    for m in _ADDRESS.finditer(text):
        value = m.group().rstrip(" ,")
        yield Entity(m.start(), m.start() + len(value), "ADRESSE", value)


def _is_function(name: str) -> bool:
    first = fold(name.split()[0]).rstrip("'’")
    return first in _FUNCTION_WORDS


def _civility_people(text: str) -> Iterator[Entity]:
    for m in _CIVILITY_NAME.finditer(text):
        name = m.group("name")
        if _is_function(name):
            continue
        yield Entity(m.start("name"), m.end("name"), "PERSONNE", name)
    for m in _CIVILITY_LOWER.finditer(text):
        name = m.group("name")
        if _is_function(name):
            continue
        yield Entity(m.start("name"), m.end("name"), "PERSONNE", name)


def _model_found_people(text: str) -> Iterator[Entity]:
    for start, end in _model_people(text):
        value = text[start:end]
        # Trim civilities the model took in, and what it took before them; keep the name.
        trimmed = re.sub(rf"^.*?{_CIVILITY}\s+", "", value)
        start += len(value) - len(trimmed)
        value = trimmed.strip(" ,.;:»«\"'")
        if not value:
            continue
        start = text.find(value, start)
        words = [fold(w) for w in re.split(r"[\s-]+", value) if w]
        if not words or any(w in _NOT_PEOPLE_WORDS for w in words) or len(value) < 3:
            continue
        if not any(ch.isupper() for ch in value) or all(w in _FUNCTION_WORDS for w in words):
            continue  # « la Présidente »: a function, not a name
        if len(words) == 1 and _SENTENCE_START.search(text[max(0, start - 4) : start]):
            continue  # « Rédige une réponse… »: a capital that starts a sentence, alone
        if _VOIE_BEFORE.search(text[max(0, start - 40) : start]):
            continue  # « rue Victor Hugo »: a street's name
        if _LEGAL.search(text[max(0, start - 12) : start]):
            continue
        yield Entity(start, start + len(value), "PERSONNE", value)


_PATTERNS = (
    _emails,
    _phones,
    lambda t: _checked(_NIR, "NIR", lambda v: std_nir.is_valid(v.replace(" ", "")), t),
    lambda t: _checked(_IBAN, "IBAN", std_iban.is_valid, t),
    lambda t: _checked(_SIRET, "SIRET", lambda v: std_siret.is_valid(v.replace(" ", "")), t),
    _plates,
    _births,
    _addresses,
    _civility_people,
)
# Where two findings overlap, the first of this order wins (an e-mail's digits are not a
# phone; an address holds no person).
_PRIORITY: dict[EntityType, int] = {
    "EMAIL": 0,
    "IBAN": 1,
    "NIR": 2,
    "SIRET": 3,
    "TELEPHONE": 4,
    "PLAQUE": 5,
    "DATE_NAISSANCE": 6,
    "ADRESSE": 7,
    "PERSONNE": 8,
}


def detect(text: str, *, protected: Iterable[str] = (), use_model: bool = True) -> list[Entity]:
    """Every resident's identifier in `text`, without overlaps, in order. `protected` are
    names that are not a resident's (the commune, its mayor, its secretary…)."""
    found: list[Entity] = []
    for recogniser in _PATTERNS:
        found.extend(recogniser(text))
    if use_model:
        found.extend(_model_found_people(text))
    kept = _without_overlaps(found)
    shielded = _protected_forms(protected)
    return [e for e in kept if not (e.type == "PERSONNE" and _is_protected(e.text, shielded))]


def _without_overlaps(found: list[Entity]) -> list[Entity]:
    """Keep the findings by priority, each only if it overlaps none kept before (kept in
    order of start, so that a 900 KB source's thousands of findings are checked by bisection,
    not against one another)."""
    ordered = sorted(found, key=lambda e: (_PRIORITY[e.type], -(e.end - e.start), e.start))
    starts: list[int] = []
    kept: list[Entity] = []
    for entity in ordered:
        index = bisect.bisect_left(starts, entity.start)
        before = kept[index - 1] if index > 0 else None
        after = kept[index] if index < len(kept) else None
        if (before is not None and before.end > entity.start) or (
            after is not None and after.start < entity.end
        ):
            continue
        starts.insert(index, entity.start)
        kept.insert(index, entity)
    return kept


def _protected_forms(protected: Iterable[str]) -> set[str]:
    """The protected names, and each of their words of three letters or more (« M. Durand »
    for the mayor Jean Durand)."""
    forms: set[str] = set()
    for name in protected:
        folded = fold(name)
        if not folded:
            continue
        forms.add(folded)
        forms.update(w for w in re.split(r"[\s-]+", folded) if len(w) >= 3)
    return forms


def _is_protected(name: str, forms: set[str]) -> bool:
    folded = fold(name)
    if folded in forms:
        return True
    words = [w for w in re.split(r"[\s]+", folded) if w]
    return bool(words) and all(w in forms for w in words)
