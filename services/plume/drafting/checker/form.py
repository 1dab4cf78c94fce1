"""The form of an act: the parts an arrêté or délibération needs before signature."""

from __future__ import annotations

import re
import unicodedata

from plume.drafting.checker.codes import (
    APPEAL_MENTION_WRONG_TRIBUNAL,
    ARTICLES_NOT_NUMBERED,
    MISSING_APPEAL_MENTION,
    MISSING_ARTICLES,
    MISSING_CONSIDERANTS,
    MISSING_EXECUTION_ARTICLE,
    MISSING_PUBLICATION_MENTION,
    MISSING_SESSION,
    MISSING_SIGNATURE,
    MISSING_VISAS,
    MISSING_VOTE,
    VISAS_WITHOUT_CGCT,
    warning,
)
from plume.drafting.document import DraftWarning, Sections
from plume.drafting.parsing import VOTE_ANYWHERE, parse_act_parts

_CGCT = re.compile(
    r"code\s+g[ée]n[ée]ral\s+des\s+collectivit[ée]s\s+territoriales|\bC\.?\s?G\.?\s?C\.?\s?T\b",
    re.IGNORECASE,
)
_EXECUTION = re.compile(
    r"\bex[ée]cution\s+du\s+pr[ée]sent\s+arr[êe]t[ée]|\bex[ée]cuter\s+le\s+pr[ée]sent\s+arr[êe]t[ée]"
    r"|\bcharg[ée]e?s?\b[^.]{0,160}\bex[ée]cution\b",
    re.IGNORECASE,
)
_PUBLICATION = re.compile(
    r"\b(?:publi[ée]e?s?|publication|affich[ée]e?s?|affichage|notifi[ée]e?s?|notification"
    r"|mise?\s+en\s+ligne)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.;!?])\s+")
_APPEAL_SENTENCE = re.compile(r"\brecours\b|tribunal\s+administratif|\bcontest", re.IGNORECASE)
# Bounded gaps: an unbounded lazy scan is quadratic on a long line with many "à".
_SIGNATURE_PLACE_DATE = re.compile(
    r"^(?:ainsi\s+)?fait\b.{0,80}?\b(?:[àa]|en)\s.{0,120}?\ble\b"
    r"|^(?:ainsi\s+)?fait\s+et\s+d[ée]lib[ée]r[ée]"
    r"|^[àa]\s+[^\n,]{1,60},\s*le\b",
    re.IGNORECASE | re.MULTILINE,
)
_SIGNATORY_TITLE = re.compile(r"\b(?:maire|adjointe?|pr[ée]sidente?|conseill[eè]re?)\b", re.I)
# The rapporteur or the list of those present do not say when the council sat.
_SESSION_HELD = re.compile(r"s[ée]ance|l['’]an\s|r[ée]uni|convoqu|convocation", re.IGNORECASE)
_TRIBUNAL = re.compile(r"tribunal\s+administratif", re.IGNORECASE)
_TRIBUNAL_NAME = re.compile(
    r"tribunal\s+administratif\s+(?:de\s+|d['’]\s*|du\s+)?"
    r"(?P<name>(?-i:[A-ZÀ-Ý])[\w'’-]*(?:\s+(?-i:[A-ZÀ-Ý])[\w'’-]*)?)",
    re.IGNORECASE,
)
_TWO_MONTHS = re.compile(r"\b(?:deux|2)\s+mois\b", re.IGNORECASE)
_APPEAL_PARAGRAPH = re.compile(r"\brecours\b|tribunal\s+administratif|t[ée]l[ée]recours", re.I)
_MOTIVATION_PARAGRAPH = re.compile(r"^(?:vu|consid[ée]rant|attendu)\b", re.IGNORECASE)
_LINKS = ("", "de ", "d ", "du ")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_MARKDOWN = re.compile(r"^[#>\s]*(?:[-*+•]\s+)?|\*\*|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)")
_TRIBUNAL_PREFIX = re.compile(
    r"^\s*(?:le\s+)?tribunal\s+administratif\s+(?:de\s+|d['’]\s*|du\s+)?", re.I
)


def check_act(
    kind: str, sections: Sections, text: str, tribunal_administratif: str
) -> list[DraftWarning]:
    """Warnings for the parts an arrêté or délibération lacks; none for other kinds."""
    if kind not in ("arrete", "deliberation"):
        return []
    arrete = kind == "arrete"
    tribunal = _TRIBUNAL_PREFIX.sub("", tribunal_administratif).strip() or "Rouen"
    warnings: list[DraftWarning] = []

    def warn(code: str, message: str) -> None:
        warnings.append(warning(code, message))

    parts = None if arrete else parse_act_parts(kind, text)

    if parts is not None and not any(_SESSION_HELD.search(line) for line in parts.session):
        warn(
            MISSING_SESSION,
            "La séance n'est pas indiquée : précisez la date de la séance du conseil municipal "
            "et sa convocation (« Séance du … », « Le conseil municipal, régulièrement "
            "convoqué, s'est réuni le … »).",
        )

    if not sections.visas:
        warn(
            MISSING_VISAS,
            "Aucun visa : ajoutez les textes sur lesquels l'acte se fonde, en commençant par "
            "« Vu le Code général des collectivités territoriales, notamment son article … ; ».",
        )
    elif not any(_CGCT.search(visa) for visa in sections.visas):
        article = "L. 2212-1 et L. 2212-2" if arrete else "L. 2121-29"
        warn(
            VISAS_WITHOUT_CGCT,
            "Aucun visa ne cite le Code général des collectivités territoriales : ajoutez celui "
            f"qui fonde la compétence (par exemple « Vu le Code général des collectivités "
            f"territoriales, notamment son article {article} ; »).",
        )

    if not sections.considerants and (arrete or not (parts and parts.expose)):
        if arrete:
            message = (
                "Aucun considérant : exposez les faits qui justifient la mesure "
                "(« Considérant que … ; »)."
            )
        else:
            message = (
                "Ni exposé ni considérant : exposez les motifs de la décision "
                "(« Considérant que … ; » ou un exposé du rapporteur)."
            )
        warn(MISSING_CONSIDERANTS, message)

    numbers = [article.number for article in sections.articles]
    if not numbers:
        warn(
            MISSING_ARTICLES,
            "Aucun article : rédigez le dispositif en articles numérotés (« Article 1er : … », "
            "« Article 2 : … »).",
        )
    elif numbers != ["unique"] and numbers != _expected_numbers(len(numbers)):
        found = ", ".join(f"Article {number}" for number in numbers)
        warn(
            ARTICLES_NOT_NUMBERED,
            "Les articles ne sont pas numérotés à la suite à partir de « Article 1er » "
            f"(trouvé : {found}) : renumérotez-les.",
        )

    if arrete and sections.articles:
        if not any(_EXECUTION.search(article.text) for article in sections.articles):
            warn(
                MISSING_EXECUTION_ARTICLE,
                "Aucun article ne charge quelqu'un de l'exécution de l'arrêté : ajoutez un "
                "dernier article, par exemple « Le secrétaire général de mairie et le commandant "
                "de la brigade de gendarmerie sont chargés, chacun en ce qui le concerne, de "
                "l'exécution du présent arrêté. »",
            )
        published = [article.text for article in sections.articles] + list(sections.mentions)
        if not any(_mentions_publication(passage) for passage in published):
            warn(
                MISSING_PUBLICATION_MENTION,
                "Rien n'indique comment l'arrêté sera porté à la connaissance du public : "
                "précisez-le dans l'article d'exécution : « … qui sera notifié au bénéficiaire » "
                "pour une décision individuelle, sinon « … qui sera publié sous forme "
                "électronique sur le site internet de la commune » (l'affichage ou le papier "
                "seulement si une commune de moins de 3 500 habitants l'a choisi).",
            )

    if parts is not None and not (parts.votes or any(_has_vote(m) for m in sections.mentions)):
        warn(
            MISSING_VOTE,
            "Le résultat du vote n'est pas indiqué : ajoutez-le (« Votes : pour …, contre …, "
            "abstentions … » ou « Adoptée à l'unanimité »).",
        )

    if not _signature_complete(sections.signature):
        warn(
            MISSING_SIGNATURE,
            "Le bloc de signature est absent ou incomplet : ajoutez « Fait à …, le … » suivi "
            "de la qualité et du nom du signataire (« Le Maire, » puis son nom).",
        )

    warnings.extend(_appeal_warnings(kind, text, tribunal))
    return warnings


def _expected_numbers(count: int) -> list[str]:
    return ["1er", *(str(n) for n in range(2, count + 1))]


def _has_vote(text: str) -> bool:
    return bool(VOTE_ANYWHERE.search(text))


def _mentions_publication(passage: str) -> bool:
    # "à compter de sa publication" in the appeal mention says nothing about publishing.
    sentences = _SENTENCE_END.split(passage)
    return any(_PUBLICATION.search(s) for s in sentences if not _APPEAL_SENTENCE.search(s))


def _signature_complete(signature: str | None) -> bool:
    if not signature or not _SIGNATURE_PLACE_DATE.search(signature):
        return False
    lines = [line for line in signature.splitlines() if line.strip()]
    return len(lines) > 1 or bool(_SIGNATORY_TITLE.search(signature))


def _tribunal_label(name: str) -> str:
    elided = _fold(name)[:1] in tuple("aeiouy")
    return f"tribunal administratif d'{name}" if elided else f"tribunal administratif de {name}"


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[-'’]", " ", bare).split())


def _appeal_warnings(kind: str, text: str, tribunal: str) -> list[DraftWarning]:
    act, subject = (
        ("l'arrêté", "Le présent arrêté")
        if kind == "arrete"
        else ("la délibération", "La présente délibération")
    )
    expected = _tribunal_label(tribunal)
    model_sentence = (
        f"« {subject} peut faire l'objet d'un recours contentieux devant le {expected} "
        "dans un délai de deux mois à compter de sa publication ou de sa notification. »"
    )
    paragraphs = [_MARKDOWN.sub("", p).strip() for p in _PARAGRAPH_BREAK.split(text)]
    relevant = [
        p
        for p in paragraphs
        if p and _APPEAL_PARAGRAPH.search(p) and not _MOTIVATION_PARAGRAPH.match(p)
    ]
    if not relevant:
        return [
            warning(
                MISSING_APPEAL_MENTION,
                f"La mention des voies et délais de recours est absente : ajoutez sous "
                f"la signature {model_sentence}",
            )
        ]
    appeal = " ".join(relevant)
    warnings: list[DraftWarning] = []
    lacking = []
    if not _TRIBUNAL.search(appeal):
        lacking.append(f"le {expected}")
    if not _TWO_MONTHS.search(appeal):
        lacking.append("le délai de deux mois")
    if lacking:
        warnings.append(
            warning(
                MISSING_APPEAL_MENTION,
                f"La mention des voies et délais de recours de {act} est incomplète "
                f"(il manque {' et '.join(lacking)}) : reprenez-la, par exemple {model_sentence}",
            )
        )
    if _TRIBUNAL.search(appeal):
        wanted = _fold(tribunal)
        # Compare what follows each "tribunal administratif", folded: "Châlons-en-Champagne" and
        # "Chalons en Champagne" name the same seat.
        windows = [_fold(appeal[m.end() : m.end() + 80]) for m in _TRIBUNAL.finditer(appeal)]
        if not any(w.startswith(link + wanted) for w in windows for link in _LINKS):
            names = [m.group("name") for m in _TRIBUNAL_NAME.finditer(appeal)]
            named = (
                f"désigne le {_tribunal_label(names[0])}"
                if names
                else "ne nomme pas le tribunal administratif"
            )
            warnings.append(
                warning(
                    APPEAL_MENTION_WRONG_TRIBUNAL,
                    f"La mention des voies et délais de recours {named} ; pour la "
                    f"commune, le tribunal compétent est le {expected} : corrigez-la.",
                )
            )
    return warnings
