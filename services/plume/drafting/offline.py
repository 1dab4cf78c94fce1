"""Offline drafting: complete, honest documents built from the request's own fields, no AI.

Used by the offline provider (no API key, or every provider failed). Nothing is invented:
what the request does not say is marked [À COMPLÉTER] for the agent to fill in.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

from plume.french import french_day

TO_COMPLETE = "[À COMPLÉTER]"

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀÂÉÈÊÎÔÙÛÇ0-9«])")


def french_date(value: str | None) -> str:
    if not value:
        return TO_COMPLETE
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    return french_day(day)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _end(text: str, mark: str = " ;") -> str:
    return text.rstrip(" .;,") + mark


def _considerant(sentence: str) -> str:
    body = _lower_first(sentence.rstrip(" .;"))
    if _fold(body).startswith("considerant"):
        return _end(sentence)
    joiner = "qu'" if _fold(body)[:1] in "aeiouyh" else "que "
    return _end(f"Considérant {joiner}{body}")


_ARTICLES = {
    "code": "le ",
    "loi": "la ",
    "decret": "le ",
    "arrete": "l'",
    "ordonnance": "l'",
    "reglement": "le ",
    "deliberation": "la ",
    "circulaire": "la ",
    "instruction": "l'",
    "directive": "la ",
}


def _visa(text: str) -> str:
    """'Code de la route, articles …' reads 'Vu le Code de la route, articles … ;'."""
    stripped = text.strip().rstrip(" .;")
    folded = _fold(stripped)
    if folded.startswith("vu "):
        return _end(stripped)
    first = folded.split(" ", 1)[0].strip(",")
    article = _ARTICLES.get(first, "")
    body = stripped if first == "code" else _lower_first(stripped) if article else stripped
    return _end(f"Vu {article}{body}")


def _article_number(index: int) -> str:
    return "1er" if index == 1 else str(index)


def _signature(data: dict[str, Any], commune: str, when: str) -> list[str]:
    return [f"Fait à {commune}, le {when}", "", *_signatory_lines(data)]


def _signatory_lines(data: dict[str, Any]) -> list[str]:
    signatory = data.get("signatory") or {}
    title = (signatory.get("title") or "Le Maire").strip().rstrip(",")
    if _fold(title) == "maire":
        title = "Le Maire"
    return [f"{title},", signatory.get("name") or TO_COMPLETE]


def _appeal(act: str, tribunal: str) -> str:
    return (
        f"*{act} peut faire l'objet d'un recours gracieux auprès du maire ou d'un recours "
        f"contentieux devant le tribunal administratif de {tribunal} dans un délai de deux mois "
        "à compter de sa publication ou de sa notification. Le tribunal administratif peut être "
        "saisi par l'application « Télérecours citoyens » accessible sur le site "
        "www.telerecours.fr.*"
    )


def _mentions_police(text: str) -> bool:
    folded = _fold(text)
    return any(
        word in folded
        for word in ("circulation", "stationnement", "voie", "route", "rue", "chemin", "place")
    )


def compose_arrete(data: dict[str, Any], identity: dict[str, Any]) -> str:
    commune = identity["commune_name"]
    everything = " ".join(
        [data.get("subject", ""), data.get("context", ""), *data.get("provisions", [])]
    )
    traffic = _mentions_police(everything)
    given = _fold(" ".join(data.get("legal_bases", [])))
    visas = []
    # The usual bases, unless the request already cites the same code.
    if "collectivites territoriales" not in given:
        visas.append(
            "Vu le Code général des collectivités territoriales, notamment ses articles "
            "L. 2212-1, L. 2212-2" + (", L. 2213-1 et L. 2213-2 ;" if traffic else " ;")
        )
    if traffic and "code de la route" not in given:
        visas.append("Vu le Code de la route, notamment ses articles R. 411-8 et R. 411-25 ;")
    visas += [_visa(base) for base in data.get("legal_bases", [])]
    considerants = [_considerant(s) for s in _sentences(data["context"])]
    considerants.append(
        "Considérant qu'il appartient au maire de prendre les mesures nécessaires pour assurer "
        "le bon ordre, la sûreté, la sécurité et la salubrité publiques ;"
    )
    provisions = list(data["provisions"])
    said = _fold(" ".join(provisions))
    period = []
    start, end = data.get("start_date"), data.get("end_date")
    # Dates and place become an article only when the provisions do not already say them.
    if (start or end) and not any(
        _fold(french_date(day).rsplit(" ", 1)[0]) in said for day in (start, end) if day
    ):
        period.append(
            f"Les présentes dispositions s'appliquent du {french_date(start)}"
            f" au {french_date(end)} inclus."
            if end
            else f"Les présentes dispositions s'appliquent à compter du {french_date(start)}."
        )
    location = (data.get("location") or "").strip().rstrip(".")
    if location and _fold(location.split(",")[0]) not in said:
        period.append(f"Les dispositions du présent arrêté s'appliquent : {location}.")
    articles = [*provisions, *period]
    articles.append(
        "La secrétaire de mairie, le commandant de la brigade de gendarmerie territorialement "
        "compétente et toute autorité de police sont chargés, chacun en ce qui le concerne, de "
        "l'exécution du présent arrêté, qui sera publié et affiché en mairie"
        + (" et sur les lieux." if traffic or data.get("location") else ".")
    )
    lines = [
        f"# Arrêté du maire n° {TO_COMPLETE}",
        "",
        f"## {data['subject'].rstrip('.')}",
        "",
        f"Le Maire de la commune de {commune},",
        "",
    ]
    for visa in visas:
        lines += [visa, ""]
    for considerant in considerants:
        lines += [considerant, ""]
    lines += ["**ARRÊTE**", ""]
    for index, text in enumerate(articles, start=1):
        lines += [f"**Article {_article_number(index)}** : {text.strip()}", ""]
    lines += [*_signature(data, commune, TO_COMPLETE), ""]
    lines.append(_appeal("Le présent arrêté", identity["tribunal_administratif"]))
    return "\n".join(lines) + "\n"


def _decision(text: str) -> str:
    """'Fixer le prix…' reads 'de fixer le prix…' after 'DÉCIDE :'."""
    first = _fold(text.split(" ", 1)[0])
    if re.fullmatch(r"[a-z]+(er|ir|re|oir)", first):
        body = _lower_first(text)
        return ("d'" if first[:1] in "aeiouyh" else "de ") + body
    return text


def compose_deliberation(data: dict[str, Any], identity: dict[str, Any]) -> str:
    commune = identity["commune_name"]
    session = french_date(data.get("session_date"))
    signatory = data.get("signatory") or {}
    president = signatory.get("name") or TO_COMPLETE
    folded = _fold(" ".join([data["subject"], data["context"], *data["decisions"]]))
    visas = [
        "Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;"
    ]
    if "subvention" in folded:
        visas.append(
            "Vu le Code général des collectivités territoriales, notamment son article L. 1611-4 ;"
        )
    if any(word in folded for word in ("poste", "emploi", "effectif", "agent")):
        visas.append("Vu le Code général de la fonction publique ;")
    if "budget" in folded or "credits" in folded:
        visas.append("Vu le budget primitif de l'exercice en cours ;")
    visas += [_visa(base) for base in data.get("legal_bases", [])]
    vote = data.get("vote")
    vote_line = (
        f"Votes : pour {vote['for']}, contre {vote['against']}, "
        f"abstentions {vote.get('abstentions', 0)}."
        if vote
        else f"Votes : pour {TO_COMPLETE}, contre {TO_COMPLETE}, abstentions {TO_COMPLETE}."
    )
    lines = [
        f"# Délibération du conseil municipal de {commune}",
        "",
        f"## {data['subject'].rstrip('.')}",
        "",
        f"Séance du {session}",
        "",
        f"Le conseil municipal de la commune de {commune}, régulièrement convoqué, s'est réuni "
        f"le {session} sous la présidence de {president}, Maire.",
        "",
    ]
    if data.get("rapporteur"):
        lines += [f"Rapporteur : {data['rapporteur']}", ""]
    lines += ["### Exposé", "", data["context"].strip(), ""]
    for visa in visas:
        lines += [visa, ""]
    lines += [
        "Considérant l'exposé qui précède et l'intérêt pour la commune de se prononcer sur "
        "cette question ;",
        "",
        "Après en avoir délibéré, le conseil municipal **DÉCIDE** :",
        "",
    ]
    articles = [_end(_decision(d), ".") for d in data["decisions"]]
    articles.append(
        "Le Maire est chargé de l'exécution de la présente délibération et autorisé à signer "
        "tout document s'y rapportant."
    )
    for index, text in enumerate(articles, start=1):
        lines += [f"**Article {_article_number(index)}** : {text}", ""]
    lines += [vote_line, ""]
    lines += [*_signature(data, commune, session), ""]
    lines += [
        f"Transmis au représentant de l'État le {TO_COMPLETE}. Publié le {TO_COMPLETE}.",
        "",
        _appeal("La présente délibération", identity["tribunal_administratif"]),
    ]
    return "\n".join(lines) + "\n"


def compose_courrier(data: dict[str, Any], identity: dict[str, Any]) -> str:
    commune = identity["commune_name"]
    recipient = data["recipient"]
    cordial = data.get("tone") == "cordial"
    lines = [
        f"**Mairie de {commune}**",
        "",
        recipient["name"],
    ]
    if recipient.get("address"):
        lines += [line.strip() for line in recipient["address"].split("\n") if line.strip()]
    lines += [
        "",
        f"{commune}, le {TO_COMPLETE}",
        "",
        f"**Objet : {data['subject'].rstrip('.')}**",
        "",
        "Madame, Monsieur,",
        "",
    ]
    for point in data["points"]:
        lines += [_end(point.strip(), "."), ""]
    closing = (
        "Je reste à votre disposition pour tout renseignement complémentaire et vous prie "
        "d'agréer, Madame, Monsieur, l'expression de mes salutations distinguées."
        if not cordial
        else "Je reste à votre écoute et vous prie de croire, Madame, Monsieur, à l'assurance "
        "de mes sentiments les meilleurs."
    )
    lines += [closing, "", *_signatory_lines(data)]
    return "\n".join(lines) + "\n"


def compose_bulletin(data: dict[str, Any], identity: dict[str, Any]) -> str:
    points = [p.strip() for p in data["key_points"]]
    lines = [f"# {data['subject'].rstrip('.')}", "", f"*{_end(points[0], '.')}*", ""]
    for point in points[1:]:
        lines += [_end(point, "."), ""]
    lines.append(f"Renseignements auprès de la mairie de {identity['commune_name']}.")
    return "\n".join(lines) + "\n"


def extractive_summary(text: str, target_words: int) -> list[str]:
    """The source's most representative sentences, in their order: no AI, nothing invented."""
    sentences = _sentences(re.sub(r"\s+", " ", text))
    words = [w for w in re.findall(r"\w{4,}", _fold(text))]
    frequency = Counter(words)
    scored = []
    for index, sentence in enumerate(sentences):
        tokens = re.findall(r"\w{4,}", _fold(sentence))
        if not tokens or len(sentence) > 600:
            continue
        score = sum(frequency[t] for t in tokens) / (len(tokens) ** 0.5)
        scored.append((score, index, sentence))
    chosen: list[tuple[int, str]] = []
    count = 0
    for _, index, sentence in sorted(scored, reverse=True):
        if count >= target_words:
            break
        chosen.append((index, sentence))
        count += len(sentence.split())
    return [sentence for _, sentence in sorted(chosen)]


def compose_synthese(data: dict[str, Any], identity: dict[str, Any]) -> str:
    target = int(data.get("target_words") or 300)
    sentences = extractive_summary(data["source_text"], target)
    lines = [
        "# Synthèse (extraits)",
        "",
        "*Aucun modèle de langue n'était disponible : cette synthèse rassemble, sans les "
        "reformuler, les phrases les plus représentatives du document, dans leur ordre.*",
        "",
    ]
    if data.get("format") == "points_cles":
        lines += [f"- {s}" for s in sentences]
    else:
        lines += [" ".join(sentences)]
    return "\n".join(lines) + "\n"


COMPOSERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], str]] = {
    "arrete": compose_arrete,
    "deliberation": compose_deliberation,
    "courrier": compose_courrier,
    "bulletin_article": compose_bulletin,
    "synthese": compose_synthese,
}


def compose(kind: str, payload: dict[str, Any]) -> str | None:
    composer = COMPOSERS.get(kind)
    if composer is None:
        return None
    return composer(payload["request"], payload["identity"])
