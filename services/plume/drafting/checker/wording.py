"""The wording of a draft: broken sentences, personal data, the form of the articles, outdated
titles, and restrictive measures with no end."""

from __future__ import annotations

import re

from plume.drafting.checker.codes import (
    BROKEN_TEXT,
    MIXED_ARTICLE_FORM,
    OBSOLETE_TITLE,
    OPEN_ENDED_MEASURE,
    PERSONAL_DATA_IN_ACT,
    warning,
)
from plume.drafting.checker.context import FRENCH_DATE, CheckContext, fold
from plume.drafting.document import DraftWarning

# Raw text; every repetition is bounded.
_ABBREVIATION_CUT = re.compile(r"(?:^|\s)(?:M|Mme|MM|Mlle|Dr|St|Ste|Me|Mgr)\s{0,2}[;,]?\s{0,2}$")
_LOWERCASE_NAME = re.compile(
    r"^[Cc]onsid[ée]rant\s+que\s+([a-zà-ÿ]{2,20})\s+[A-ZÀ-Ý][a-zà-ÿ]{2,30}"
)
_COMMON_WORDS = frozenset(
    [
        "le",
        "la",
        "les",
        "un",
        "une",
        "des",
        "du",
        "de",
        "ce",
        "cet",
        "cette",
        "ces",
        "son",
        "sa",
        "ses",
        "leur",
        "leurs",
        "notre",
        "nos",
        "dans",
        "par",
        "pour",
        "sur",
        "sous",
        "selon",
        "depuis",
        "lors",
        "entre",
        "si",
        "il",
        "elle",
        "ils",
        "elles",
        "cela",
        "ceci",
        "tout",
        "toute",
        "tous",
        "toutes",
        "monsieur",
        "madame",
        "messieurs",
        "mesdames",
        "chaque",
        "aucun",
        "aucune",
        "plusieurs",
        "certains",
        "certaines",
        "en",
    ]
)
_CONSIDERANT_BODY = re.compile(r"^consid[ée]rant\s+(?:que\s+|qu['’]\s*)?", re.IGNORECASE)
_PHONE = re.compile(r"(?<!\d)(?:\+33\s?|0)[1-9](?:[ .-]?\d{2}){4}(?!\d)")
_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}\.[a-z]{2,24}\b", re.IGNORECASE)
_BIRTH = re.compile(r"\bne(?:e)? le \d")
_OBSOLETE = re.compile(r"\bsecr[ée]taire\s+de\s+(?:la\s+)?mairie\b", re.IGNORECASE)
_INFINITIVE = re.compile(r"[a-z]{1,25}(?:er|ir|re|oir)")
_RESTRICTIVE = re.compile(
    r"\binterdi|\bfermee?s?\b|\bfermeture\b|\blimitee?s?\b|\breglementee?s?\b|\bsuspendue?s?\b"
    r"|\brestreinte?s?\b|\bneutralisee?s?\b|\bbarree?s?\b|\balternat\b"
)
_DATED = re.compile(
    r"\b\d{1,2}/\d{1,2}/\d{2,4}\b|\bdu \d|\bjusqu'au \d|\ba compter du \d"
    r"|\bjusqu'a l'arrete (?:levant|abrogeant)|\ba titre permanent\b|\bpermanente?s?\b"
    r"|\bpendant (?:toute )?la duree (?:de la|des) (?:manifestation|course|marche|foire|fete)"
)
_OPEN_WORDING = re.compile(
    r"jusqu'a (?:la fin|l'achevement|la fin complete) des travaux|jusqu'a nouvel ordre"
    r"|jusqu'a nouvel avis"
)
# An article that exempts from the measures restricts nothing itself.
_EXEMPTION = re.compile(r"ne s'appliquen?t? (?:pas|ni)\b|\bderog|\bpar exception\b|\bexempt")
_PERIOD_ARTICLE = re.compile(r"presentes dispositions|present arrete s'applique|mesures? ci-dessus")
_AUTHORISATION = re.compile(r"\bautoris\w{0,6}\b.{0,80}\bsign")


def check_wording(ctx: CheckContext) -> list[DraftWarning]:
    warnings = list(_obsolete_title(ctx))
    if not ctx.is_act:
        return warnings
    return [
        *_broken_text(ctx),
        *_personal_data(ctx),
        *_article_form(ctx),
        *_open_ended(ctx),
        *warnings,
    ]


def _broken_text(ctx: CheckContext) -> list[DraftWarning]:
    for passage in [*ctx.sections.visas, *ctx.sections.considerants]:
        line = passage.strip()
        body = _CONSIDERANT_BODY.sub("", line).strip(" ;.")
        cut = _ABBREVIATION_CUT.search(line)
        lowered = _LOWERCASE_NAME.match(line)
        fragment = _CONSIDERANT_BODY.match(line) and len(body.split()) < 2
        misnamed = lowered is not None and lowered.group(1) not in _COMMON_WORDS
        if cut or fragment or misnamed:
            return [
                warning(
                    BROKEN_TEXT,
                    f"Un passage semble coupé ou mal recomposé (« {line[:80]} ») : relisez "
                    "les visas et considérants et rétablissez la phrase entière (une "
                    "abréviation comme « M. » a pu être prise pour une fin de phrase).",
                )
            ]
    return []


def _personal_data(ctx: CheckContext) -> list[DraftWarning]:
    found = []
    if _PHONE.search(ctx.text):
        found.append("un numéro de téléphone")
    if _EMAIL.search(ctx.text):
        found.append("une adresse électronique")
    if _BIRTH.search(ctx.folded):
        found.append("une date de naissance")
    if not found:
        return []
    return [
        warning(
            PERSONAL_DATA_IN_ACT,
            f"L'acte contient {' et '.join(found)} : ces données ne sont pas nécessaires à la "
            "décision et l'acte sera publié ; retirez-les (le nom et l'adresse du bénéficiaire "
            "suffisent).",
        )
    ]


def _first_words(text: str) -> list[str]:
    return fold(text).replace("'", "' ").split()[:2]


def _article_form(ctx: CheckContext) -> list[DraftWarning]:
    bare = with_de = False
    for article in ctx.articles_text():
        words = _first_words(article)
        if not words:
            continue
        if words[0] in ("de", "d'") and len(words) > 1 and _INFINITIVE.fullmatch(words[1]):
            with_de = True
        elif _INFINITIVE.fullmatch(words[0]) and article.strip()[:1].isupper():
            bare = True
    authorisations = sum(
        1 for article in ctx.articles_text() if _AUTHORISATION.search(fold(article))
    )
    problems = []
    if bare and with_de:
        problems.append(
            "les articles mélangent « Créer … » et « de créer … » : gardez une seule forme "
            "(après « DÉCIDE : », l'infinitif seul, par exemple « Article 1er : Créer … »)"
        )
    if authorisations > 1:
        problems.append(
            "plusieurs articles autorisent la signature : n'en gardez qu'un, qui nomme les "
            "documents à signer"
        )
    if not problems:
        return []
    text = " ; ".join(problems)
    return [warning(MIXED_ARTICLE_FORM, f"{text[:1].upper()}{text[1:]}.")]


def _open_ended(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.arrete:
        return []
    articles = [(a.number, fold(a.text)) for a in ctx.sections.articles]
    period = any(
        _PERIOD_ARTICLE.search(text) and (_DATED.search(text) or FRENCH_DATE.search(text))
        for _, text in articles
    )
    undated = []
    open_words = []
    for number, text in articles:
        if not _RESTRICTIVE.search(text) or "execution du present" in text:
            continue
        if _EXEMPTION.search(text):
            continue
        if _OPEN_WORDING.search(text):
            open_words.append(number)
        elif not period and not (_DATED.search(text) or FRENCH_DATE.search(text)):
            undated.append(number)
    if not (undated or open_words):
        return []
    parts = []
    if open_words:
        parts.append(
            f"l'article {', '.join(open_words)} fixe une fin incertaine (« jusqu'à la fin des "
            "travaux ») : donnez une date de fin, ou pour un danger « jusqu'à l'arrêté levant "
            "la mesure »"
        )
    if undated:
        parts.append(
            f"l'article {', '.join(undated)} restreint la circulation ou l'usage sans date : "
            "précisez la période (« du … au … ») ou ajoutez un article qui fixe la période de "
            "toutes les mesures"
        )
    text = " ; ".join(parts)
    return [
        warning(
            OPEN_ENDED_MEASURE,
            f"{text[:1].upper()}{text[1:]}. Une mesure de police doit être limitée à ce que "
            "la situation exige.",
        )
    ]


def _obsolete_title(ctx: CheckContext) -> list[DraftWarning]:
    if not _OBSOLETE.search(ctx.text):
        return []
    return [
        warning(
            OBSOLETE_TITLE,
            "Le titre « secrétaire de mairie » n'existe plus : écrivez « secrétaire général de "
            "mairie » (ou « la secrétaire générale de mairie »).",
        )
    ]
