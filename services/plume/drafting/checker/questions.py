"""Checks that need the agent's judgement or facts Plume does not hold: asked as questions or
as things to verify (employment mentions, interested councillors, subsidies, letters, length,
the ACTES nature)."""

from __future__ import annotations

import re

from plume.drafting.checker.codes import (
    ACTES_LOW_CONFIDENCE,
    COUNCILLOR_INTEREST,
    COURRIER_INSTRUCTION_LEFT,
    EMPLOYMENT_MENTIONS,
    LENGTH_OFF_TARGET,
    SUBSIDY_AGREEMENT,
    warning,
)
from plume.drafting.checker.context import CheckContext, fold
from plume.drafting.document import DraftWarning

SUBSIDY_THRESHOLD_EUR = 23_000
LENGTH_TOLERANCE = 0.25

_POST = re.compile(
    r"\b(?:cre(?:ation|er|e)|ouverture|ouvrir) (?:d'un |un |d'une |une |de |des )?"
    r"(?:\w{1,20} ){0,2}(?:postes?|emplois?)\b"
)
# The cadres d'emplois of the territorial civil service a commune recruts in most (folded):
# naming one names the grade (« un emploi d'adjoint technique territorial »).
_CADRES = (
    r"adjoints? (?:techniques?|administratifs?|d'animation|du patrimoine)"
    r"|agents? de maitrise|agents? sociaux|agents? social|atsem"
    r"|agents? specialises? (?:principa(?:l|ux) )?(?:de \w+ classe )?des ecoles maternelles"
    r"|auxiliaires? de (?:puericulture|soins)|redacteurs?|techniciens?|animateurs?"
    r"|educateurs? (?:des activites physiques et sportives|de jeunes enfants)"
    r"|assistants? (?:de conservation|d'enseignement artistique)|attaches?|ingenieurs?"
    r"|bibliothecaires?|puericultrices?|infirmiers?|conseillers? des activites physiques"
    r"|gardiens?-brigadiers?|brigadiers?-chefs?|chefs? de service de police municipale"
    r"|gardes? champetres?"
)
_MENTIONS = {
    "grade": (
        re.compile(rf"\bgrade\b|cadre d'emplois|\b(?:{_CADRES})\b"),
        "le grade ou le cadre d'emplois",
    ),
    "motif": (
        re.compile(r"\bmotif|\ben raison\b|\bjustifie|\bbesoin\b|nature des fonctions"),
        "le motif du recours à un contractuel",
    ),
    "fonctions": (re.compile(r"\bfonctions\b|\bmissions\b"), "la nature des fonctions"),
    "niveau": (re.compile(r"\bniveau\b|\bdiplome"), "le niveau de recrutement"),
    "remuneration": (
        re.compile(r"\bremunera|\bindice\b|\btraitement\b|grille indiciaire|\bechelon"),
        "le niveau de rémunération",
    ),
}
_LABEL_TO_COMPLETE = re.compile(r"[\w' ]{1,40}:\s?\[a completer\]")
_CONTRACT_BASE = re.compile(r"\bl\. ?332-8\b")
_SUBSIDY = re.compile(r"\bsubvention")
_INTEREST_HANDLED = re.compile(
    r"ne prend pas part|n'a pas pris part|ne prennent pas part|n'ont pas pris part"
    r"|aucun (?:conseiller|elu|membre)[^.;]{0,60}interesse|s'est retiree? |a quitte la salle"
    r"|ne participe pas au vote|n'ont pas participe"
)
_AMOUNT = re.compile(
    r"(?<![\d,.])(\d{1,3}(?:[  .]\d{3}){1,3}|\d{4,9})(?:,\d{1,2})?\s?(?:€|euros?\b)",
    re.IGNORECASE,
)
_AGREEMENT = re.compile(r"\bconvention\b")
_INSTRUCTIONS = frozenset(
    [
        "accuser",
        "adresser",
        "annoncer",
        "apporter",
        "assurer",
        "citer",
        "confirmer",
        "decrire",
        "demander",
        "evoquer",
        "expliquer",
        "exposer",
        "indiquer",
        "informer",
        "insister",
        "inviter",
        "joindre",
        "lister",
        "mentionner",
        "orienter",
        "preciser",
        "presenter",
        "prevenir",
        "proposer",
        "rappeler",
        "rassurer",
        "rediger",
        "relancer",
        "remercier",
        "repondre",
        "signaler",
        "solliciter",
        "souligner",
        "transmettre",
    ]
)
_COURRIER_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+(?:['’-]\w+)*")


def check_questions(ctx: CheckContext) -> list[DraftWarning]:
    return [
        *_employment(ctx),
        *_councillor_interest(ctx),
        *_subsidy_agreement(ctx),
        *_courrier_instruction(ctx),
        *_length(ctx),
    ]


def _employment(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.deliberation or not _POST.search(ctx.request_text() or ctx.folded):
        return []
    wanted = ["grade"]
    if _CONTRACT_BASE.search(ctx.folded):
        wanted += ["motif", "fonctions", "niveau", "remuneration"]
    # « motif : [À COMPLÉTER] » names the mention without stating it.
    stated = _LABEL_TO_COMPLETE.sub(" ", ctx.folded)
    missing = [_MENTIONS[name][1] for name in wanted if not _MENTIONS[name][0].search(stated)]
    if not missing:
        return []
    contract = (
        " ; comme elle vise l'article L. 332-8, elle doit aussi dire pourquoi l'emploi peut "
        "être pourvu par un contractuel, quelles fonctions il exerce et à quels niveaux de "
        "recrutement et de rémunération"
        if len(wanted) > 1
        else ""
    )
    return [
        warning(
            EMPLOYMENT_MENTIONS,
            f"La délibération qui crée l'emploi ne précise pas {', '.join(missing)} : "
            f"indiquez-le{'s' if len(missing) > 1 else ''}, la création d'emploi doit "
            f"mentionner le grade ou les grades correspondants{contract}.",
        )
    ]


def _councillor_interest(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.deliberation or not _SUBSIDY.search(ctx.request_text() or ctx.folded):
        return []
    if _INTEREST_HANDLED.search(ctx.folded):
        return []
    return [
        warning(
            COUNCILLOR_INTEREST,
            "Un conseiller municipal est-il dirigeant, membre du bureau ou salarié du "
            "bénéficiaire de la subvention ? S'il l'est, il ne doit prendre part ni au débat ni "
            "au vote, et la délibération le mentionne (« M. … n'a pas pris part au vote ») ; "
            "sinon, indiquez qu'aucun conseiller intéressé n'a pris part au vote.",
        )
    ]


def _amounts(text: str) -> list[float]:
    values = []
    for found in _AMOUNT.finditer(text):
        digits = re.sub(r"[  .]", "", found.group(1))
        values.append(float(digits))
    return values


def _subsidy_agreement(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.deliberation or not _SUBSIDY.search(ctx.request_text() or ctx.folded):
        return []
    largest = max(_amounts(ctx.text), default=0.0)
    if largest <= SUBSIDY_THRESHOLD_EUR or _AGREEMENT.search(ctx.folded):
        return []
    return [
        warning(
            SUBSIDY_AGREEMENT,
            f"Une subvention de plus de 23 000 € (ici {largest:,.0f} €) exige une convention "
            "qui en définit l'objet, le montant, les modalités de versement et les conditions "
            "d'utilisation : est-elle prévue ? Ajoutez un article qui l'approuve et autorise le "
            "maire à la signer.".replace(",", " "),
        )
    ]


def _courrier_instruction(ctx: CheckContext) -> list[DraftWarning]:
    if ctx.kind != "courrier":
        return []
    points = {fold(point).rstrip(" .") for point in ctx.fields.get("points") or [] if point}
    for sentence in _COURRIER_SENTENCE.split(ctx.text):
        stripped = sentence.strip().lstrip("-*• ")
        words = fold(stripped).split()
        if not words or not stripped[:1].isupper():
            continue
        pasted = fold(stripped).rstrip(" .") in points and bool(
            re.fullmatch(r"[a-z]+(?:er|ir|re)", words[0])
        )
        if words[0] in _INSTRUCTIONS or pasted:
            return [
                warning(
                    COURRIER_INSTRUCTION_LEFT,
                    f"Une consigne de la demande figure telle quelle dans le courrier (« "
                    f"{stripped[:80]} ») : rédigez la phrase à l'adresse du destinataire "
                    "(« Je vous prie de trouver ci-joint … », « Nous avons bien reçu … »).",
                )
            ]
    return []


def _length(ctx: CheckContext) -> list[DraftWarning]:
    target = ctx.number("length_words")
    if ctx.kind != "bulletin_article" or not target:
        return []
    words = len(_WORD.findall(ctx.text))
    if abs(words - target) <= target * LENGTH_TOLERANCE:
        return []
    direction = "trop court" if words < target else "trop long"
    return [
        warning(
            LENGTH_OFF_TARGET,
            f"L'article compte environ {words} mots pour {target} demandés : il est "
            f"{direction}. {'Développez les points clés' if words < target else 'Resserrez-le'} "
            "pour approcher la longueur demandée (à 25 % près).",
        )
    ]


def check_actes(ctx: CheckContext) -> list[DraftWarning]:
    label = fold(ctx.acte_label or "")
    if not ctx.acte_code or not label.startswith("divers"):
        return []
    return [
        warning(
            ACTES_LOW_CONFIDENCE,
            f"La nature ACTES proposée ({ctx.acte_code} « {ctx.acte_label} ») est une catégorie "
            "de repli : vérifiez dans la nomenclature de la préfecture la matière qui convient "
            "(par exemple 8.1 « Enseignement » pour la restauration scolaire) et corrigez-la "
            "avant la transmission.",
        )
    ]
