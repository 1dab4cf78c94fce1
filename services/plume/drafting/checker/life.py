"""An act's life after signature: its number in the registre, how it is made public, whether
it goes to the préfecture, and the « certifié exécutoire » block."""

from __future__ import annotations

import re

from plume.drafting import legal_bases
from plume.drafting.checker.codes import (
    MISSING_ACT_NUMBER,
    MISSING_EXECUTORY_MENTION,
    PUBLICITY_MODE,
    TRANSMISSION_REQUIRED,
    warning,
)
from plume.drafting.checker.context import PLACEHOLDER, CheckContext, fold, given
from plume.drafting.checker.visas import matters
from plume.drafting.document import DraftWarning

_NUMBER = re.compile(r"\bn(?:°|º|o\.)\s*(?P<number>[^\s,;:]{1,40})", re.IGNORECASE)
_ACT_NOUN = re.compile(r"\barrete\b|\bdeliberation\b")
_SENTENCE = re.compile(r"(?<=[.;!?])\s+|\n+")
_APPEAL = re.compile(r"\brecours\b|tribunal administratif|\bcontest|telerecours")
# Folded text. An individual decision is notified (L. 2131-1 II).
_INDIVIDUAL = re.compile(
    r"permission de voirie|permis de stationnement|autorisation individuelle"
    r"|\best autorisee? a\b|\bsont autorises a\b|\bbeneficiaire\b|\bnomme(?:e)? (?:au|en|a)\b"
)
_OLD_PUBLICITY = re.compile(r"\bpublie(?:e|s|es)? et affiche|\baffiche(?:e|s|es)? en mairie")
_MODES = {
    "electronique": re.compile(r"electronique|site internet|en ligne|site de la commune"),
    "affichage": re.compile(r"\baffich"),
    "papier": re.compile(r"\bpapier\b|registre|mise a disposition"),
}
_MODE_WORDS = {
    "electronique": "publié sous forme électronique sur le site internet de la commune",
    "affichage": "publié par affichage en mairie",
    "papier": "publié sur papier (mis à disposition du public en mairie)",
}
_NOTIFIED = re.compile(r"\bnotifi")
_TRAFFIC = re.compile(r"\bcirculation\b|\bstationnement\b")
# Arrêtés that go to the préfecture (L. 2131-2): police other than traffic, personnel.
_TRANSMITTED_ARRETE = re.compile(
    r"\binterdi|\bfermeture\b|\bferme(?:e|s)?\b|\bpolice\b|\bperil\b|\bbaignade\b|\bbruit\b"
    r"|debit de boissons|\bchiens?\b|\brecrut|\bnomination\b|\bcontractuel|\bsanction"
)
_TRANSMISSION = re.compile(r"\btransmi(?:s|se|ssion)\b")
_PREFECTURE = re.compile(r"prefe|representant de l'etat|controle de legalite|sous-prefe")
_EXECUTORY = re.compile(r"\bexecutoire\b")


def check_life(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.is_act:
        return []
    sentences = [
        s for s in _SENTENCE.split(ctx.folded_lines()) if s.strip() and not _APPEAL.search(s)
    ]
    return [
        *_number(ctx),
        *_publicity(ctx, sentences),
        *_transmission(ctx, sentences),
        *_executory(sentences),
    ]


def _number(ctx: CheckContext) -> list[DraftWarning]:
    if given(ctx.value("number")):
        return []
    # The number sits in the act's heading: its first lines.
    first = [line for line in ctx.text.splitlines() if line.strip()][:4]
    head = "\n".join(line for line in first if _ACT_NOUN.search(fold(line)))
    for found in _NUMBER.finditer(head):
        if not PLACEHOLDER.match(head, found.start("number")):
            return []
    act = "l'arrêté" if ctx.arrete else "la délibération"
    registre = "des arrêtés" if ctx.arrete else "des délibérations"
    return [
        warning(
            MISSING_ACT_NUMBER,
            f"Le numéro de {act} manque : attribuez-lui le numéro suivant du registre "
            f"{registre} (par exemple « n° 2027-012 ») et reportez-le dans le titre ; c'est "
            "aussi l'identifiant de l'acte dans @CTES.",
            "CGCT, art. R. 2122-7" if ctx.arrete else "CGCT, art. R. 2121-9",
        )
    ]


def is_individual(ctx: CheckContext) -> bool:
    """Whether the act decides for a named person: the legal bases table says so by matter,
    else the wording of the request does (« est autorisé à », « bénéficiaire »)."""
    flagged = ctx.value("individual")
    if isinstance(flagged, bool):
        return flagged
    if not ctx.arrete:
        return False
    return legal_bases.is_individual(matters(ctx)) or bool(
        _INDIVIDUAL.search(ctx.request_text() or ctx.folded)
    )


def _publicity(ctx: CheckContext, sentences: list[str]) -> list[DraftWarning]:
    old = any(_OLD_PUBLICITY.search(s) for s in sentences)
    if is_individual(ctx):
        if any(_NOTIFIED.search(s) for s in sentences):
            return []
        return [
            warning(
                PUBLICITY_MODE,
                "Cet arrêté est une décision individuelle : il entre en vigueur par sa "
                "notification à l'intéressé, pas par son affichage. Remplacez la formule de "
                "publicité par « Le présent arrêté sera notifié à [bénéficiaire]. » et datez la "
                "notification dans le bloc exécutoire.",
                "CGCT, art. L. 2131-1, II",
            )
        ]
    mode = ctx.publication_mode if ctx.publication_mode in _MODES else "electronique"
    if any(_MODES[mode].search(s) and not _only_old(s, mode) for s in sentences):
        return []
    said = (
        "La mention de publicité reprend la formule antérieure à 2022 (« publié et affiché »)"
        if old
        else "Rien ne dit comment l'acte est rendu public"
    )
    return [
        warning(
            PUBLICITY_MODE,
            f"{said} : depuis le 1er juillet 2022, il doit être {_MODE_WORDS[mode]}, selon le "
            "mode retenu par la commune. Corrigez la mention (« … qui sera "
            + _MODE_WORDS[mode]
            + " »).",
            "CGCT, art. L. 2131-1, III et IV",
        )
    ]


def _only_old(sentence: str, mode: str) -> bool:
    # « publié et affiché » says affichage only by habit: it counts only where affichage was
    # chosen, and never for an organisation that publishes electronically.
    return mode != "affichage" and bool(_OLD_PUBLICITY.search(sentence))


def transmission_due(ctx: CheckContext) -> bool:
    said = legal_bases.transmission_due(ctx.kind, matters(ctx))
    if said is not None:
        return said
    matter = ctx.request_text() or ctx.folded
    return bool(_TRANSMITTED_ARRETE.search(matter)) and not _TRAFFIC.search(matter)


def _transmission(ctx: CheckContext, sentences: list[str]) -> list[DraftWarning]:
    if not transmission_due(ctx):
        return []
    if any(_TRANSMISSION.search(s) and _PREFECTURE.search(s) for s in sentences):
        return []
    act = (
        "Cet arrêté doit être transmis" if ctx.arrete else "Cette délibération doit être transmise"
    )
    return [
        warning(
            TRANSMISSION_REQUIRED,
            f"{act} au représentant de l'État (@CTES) pour devenir "
            "exécutoire : ajoutez « Transmis en préfecture le … » dans le bloc exécutoire.",
        )
    ]


def _executory(sentences: list[str]) -> list[DraftWarning]:
    if any(_EXECUTORY.search(s) for s in sentences):
        return []
    return [
        warning(
            MISSING_EXECUTORY_MENTION,
            "Le bloc « certifié exécutoire » manque : ajoutez sous la signature « Acte certifié "
            "exécutoire, publié (ou notifié) le … et, le cas échéant, transmis en préfecture "
            "le … », daté et signé par le maire.",
        )
    ]
