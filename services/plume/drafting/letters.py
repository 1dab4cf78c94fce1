"""Offline letters and bulletin articles, built from the request's own fields, no AI.

A letter speaks to its recipient: the agent's instructions (« Remercier M. X de son
courriel… », « Joindre la délibération… ») become the mayor's sentences (« Je vous remercie de
votre courriel… », a list of pièces jointes); the salutation and the closing formula follow
the recipient. An article shorter than asked for says how much is left to write.
"""

from __future__ import annotations

import re
from typing import Any

TO_COMPLETE = "[À COMPLÉTER]"

# An instruction's verb -> the first-person opening that replaces it. The recipient named
# right after the verb becomes « vous ».
_OPENINGS: dict[str, str] = {
    "remercier": "Je vous remercie",
    "accuser reception": "J'accuse réception",
    "indiquer": "Je vous indique",
    "informer": "Je vous informe",
    "preciser": "Je vous précise",
    "rappeler": "Je vous rappelle",
    "expliquer": "Je vous précise",
    "signaler": "Je vous signale",
    "confirmer": "Je vous confirme",
    "inviter": "Je vous invite",
    "proposer": "Je vous propose",
    "presenter": "Je vous présente",
    "transmettre": "Je vous transmets",
    "demander": "Je vous demande",
    "solliciter": "Je sollicite",
    "souligner": "Je souligne",
    "assurer": "Je vous assure",
}
_VERB = re.compile(
    r"^(?P<verb>accuser\s+r[ée]ception|[a-zéèêàâîôûç]{4,20}er|[a-zéèêàâîôûç]{4,20}ir|"
    r"[a-zéèêàâîôûç]{4,20}re)\b\s*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_NAMED = re.compile(
    r"^(?:M\.|MM\.|Mme|Mmes|Madame|Monsieur)\s+[A-ZÀ-Ý][\w'’-]{0,40}(?:\s+[A-ZÀ-Ý][\w'’-]{0,40})?"
    r"(?=\s|$)\s*"
)
_JOIN = re.compile(r"^joindre\b\s*(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_POSSESSIVE = {"de son ": "de votre ", "de sa ": "de votre ", "de ses ": "de vos "}
_FOLD = str.maketrans("éèêàâîôûç", "eeeaaiouc")


def _end(text: str, mark: str = ".") -> str:
    return text.rstrip(" .;,") + mark


def _address_recipient(point: str) -> str | None:
    """The point as the mayor writes it to the recipient, or None if it is not an instruction."""
    match = _VERB.match(point.strip())
    if match is None:
        return None
    verb = " ".join(match["verb"].lower().translate(_FOLD).split())
    opening = _OPENINGS.get(verb)
    if opening is None:
        return None
    rest = _NAMED.sub("", match["rest"], count=1)
    if rest.startswith("et "):
        rest = "ainsi que " + rest[3:]
        opening += ","
    for mine, yours in _POSSESSIVE.items():
        if rest.startswith(mine):
            rest = yours + rest[len(mine) :]
    rest = re.sub(r"\ble maire a\b", "j'ai", rest)
    return _end(f"{opening} {rest}".strip())


def _salutation(recipient: str) -> str:
    name = recipient.strip()
    head = name.split(",")[0]
    words = head.split()
    if not words:
        return "Madame, Monsieur"
    first = words[0].rstrip(".").lower()
    # « Monsieur le Préfet de la Seine-Maritime » -> « Monsieur le Préfet ».
    if first in ("monsieur", "madame") and len(words) > 2 and words[1].lower() in ("le", "la"):
        return " ".join(words[:3])
    if first in ("m", "monsieur"):
        return "Monsieur"
    if first in ("mme", "madame"):
        return "Madame"
    return "Madame, Monsieur"


def _closing(salutation: str, cordial: bool) -> str:
    if "préfet" in salutation.lower() or "prefet" in salutation.lower():
        return f"Je vous prie d'agréer, {salutation}, l'expression de ma haute considération."
    if cordial:
        return (
            "Je reste à votre écoute et vous prie de croire, "
            f"{salutation}, à l'assurance de mes sentiments les meilleurs."
        )
    return (
        "Je reste à votre disposition pour tout renseignement complémentaire et vous prie "
        f"d'agréer, {salutation}, l'expression de mes salutations distinguées."
    )


def _signatory_lines(data: dict[str, Any], identity: dict[str, Any]) -> list[str]:
    signatory = data.get("signatory") or identity.get("mayor") or {}
    title = (signatory.get("title") or "Le Maire").strip().rstrip(",")
    if title.lower() == "maire":
        title = "Le Maire"
    return [f"{title},", signatory.get("name") or TO_COMPLETE]


def compose_courrier(data: dict[str, Any], identity: dict[str, Any]) -> str:
    commune = identity["commune_name"]
    recipient = data["recipient"]
    salutation = _salutation(recipient["name"])
    lines = [f"**Mairie de {commune}**", "", recipient["name"]]
    if recipient.get("address"):
        lines += [line.strip() for line in recipient["address"].split("\n") if line.strip()]
    lines += ["", f"{commune}, le {TO_COMPLETE}", "", f"**Objet : {data['subject'].rstrip('.')}**"]
    attachments: list[str] = []
    body: list[str] = []
    for point in data["points"]:
        joined = _JOIN.match(point.strip())
        if joined:
            attachments.append(joined["rest"].rstrip(" .;"))
            continue
        body.append(_address_recipient(point) or _end(point.strip()))
    if attachments:
        lines.append(f"**Pièces jointes :** {' ; '.join(attachments)}")
    lines += ["", f"{salutation},", ""]
    for paragraph in body:
        lines += [paragraph, ""]
    if attachments:
        lines += [f"Vous trouverez ci-joint {' ainsi que '.join(attachments)}.", ""]
    folded = data["subject"].lower()
    if "detr" in folded or "dsil" in folded:
        # CGCT R. 2334-24: no work starts before the file is declared or deemed complete.
        lines += [
            "L'opération ne connaîtra aucun commencement d'exécution avant que le dossier ait "
            "été déclaré ou réputé complet (CGCT, art. R. 2334-24).",
            "",
        ]
    lines += [_closing(salutation, data.get("tone") == "cordial"), ""]
    lines += _signatory_lines(data, identity)
    return "\n".join(lines) + "\n"


def compose_bulletin(data: dict[str, Any], identity: dict[str, Any]) -> str:
    points = [p.strip() for p in data["key_points"]]
    lines = [f"# {data['subject'].rstrip('.')}", "", f"*{_end(points[0])}*", ""]
    for point in points[1:]:
        lines += [_end(point), ""]
    lines.append(f"Renseignements auprès de la mairie de {identity['commune_name']}.")
    target = data.get("length_words")
    written = len(" ".join(lines).split())
    if target and written < 0.75 * target:
        # Without a model nothing is invented: the article says what is left to write.
        lines += [
            "",
            f"{TO_COMPLETE} : développez l'article d'environ {target - written} mots pour "
            f"atteindre les {target} mots demandés (le contexte, un témoignage, les informations "
            "pratiques).",
        ]
    return "\n".join(lines) + "\n"
