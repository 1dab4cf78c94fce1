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

from plume.drafting import letters
from plume.drafting.decisions import decision, lower_first, matter_articles
from plume.drafting.legal_bases import Matter, expected_visas, matters_for_request
from plume.drafting.publicity import act_life
from plume.drafting.seance import session_lines, signature_lines, vote_line
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


# "M. Julien Marchand" is one sentence, not two: a split after a title or an abbreviation is
# undone.
_ABBREVIATION = re.compile(r"(?:^|\s)(?:M|MM|Mme|Mmes|Mlle|Dr|Me|St|Ste|art|cf|n°|av|bd)\.$")
_PHONE = re.compile(r"(?:\+33\s?|\b0)[1-9](?:[\s.-]?\d{2}){4}\b")
_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,4}")


def _sentences(text: str) -> list[str]:
    sentences: list[list[str]] = []
    for piece in _SENTENCE.split(text.strip()):
        piece = piece.strip()
        if not piece:
            continue
        # The tail is enough (an abbreviation is a few letters), and keeps this linear.
        if sentences and _ABBREVIATION.search(sentences[-1][-1][-12:]):
            sentences[-1].append(piece)
        else:
            sentences.append([piece])
    return [" ".join(parts) for parts in sentences]


def _private(sentence: str) -> bool:
    """A phone number or an e-mail address has no place in an act (RGPD, art. 5-1-c)."""
    return bool(_PHONE.search(sentence) or _EMAIL.search(sentence))


def _end(text: str, mark: str = " ;") -> str:
    return text.rstrip(" .;,") + mark


def _considerant(sentence: str) -> str:
    body = lower_first(sentence.rstrip(" .;"))
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
    body = stripped if first == "code" else lower_first(stripped) if article else stripped
    return _end(f"Vu {article}{body}")


def _article_number(index: int) -> str:
    return "1er" if index == 1 else str(index)


def _signatory(data: dict[str, Any], identity: dict[str, Any]) -> tuple[str, str]:
    """Who signs: the request's signatory, else the organisation's mayor; never invented."""
    signatory = data.get("signatory") or identity.get("mayor") or {}
    title = (signatory.get("title") or "Le Maire").strip().rstrip(",")
    if _fold(title) == "maire":
        title = "Le Maire"
    return title, signatory.get("name") or TO_COMPLETE


def _executing_secretary(identity: dict[str, Any]) -> str:
    # « Secrétaire de mairie » became « secrétaire général de mairie » (CGCT L. 2122-19-1).
    title = _fold((identity.get("secretary") or {}).get("title") or "")
    return "La secrétaire générale" if "generale" in title else "Le secrétaire général"


def _appeal(act: str, tribunal: str) -> str:
    return (
        f"*{act} peut faire l'objet d'un recours gracieux auprès du maire ou d'un recours "
        f"contentieux devant le tribunal administratif de {tribunal} dans un délai de deux mois "
        "à compter de sa publication ou de sa notification. Le tribunal administratif peut être "
        "saisi par l'application « Télérecours citoyens » accessible sur le site "
        "www.telerecours.fr.*"
    )


_VISA_RANK = (("code", 0), ("loi", 1), ("ordonnance", 2), ("decret", 3), ("arrete", 4))
_VISA_LATE = ("deliberation", "tableau", "demande", "avis")


def _visa_rank(visa: str) -> int:
    """Codes, then lois, ordonnances, décrets, arrêtés, délibérations, the request (Légistique)."""
    words = _fold(visa).removeprefix("vu ").split()
    first = words[1] if len(words) > 1 and words[0] in ("le", "la", "l", "les") else ""
    first = first or (words[0].lstrip("l'") if words else "")
    for word, rank in _VISA_RANK:
        if first.startswith(word):
            return rank
    return 6 if first.startswith(_VISA_LATE) else 5


def _visas(data: dict[str, Any], matters: list[Matter], defaults: list[str]) -> list[str]:
    """The matter's bases the request does not cite, then the request's own, in order; a
    default visa only for a code nothing else cites."""
    given = list(data.get("legal_bases", []))
    visas = _merged(
        [expected.text for expected in expected_visas(matters) if not expected.cited_among(given)]
    )
    visas += [_visa(base) for base in given]
    cited = _fold(" ".join(visas))
    visas += [v for v in defaults if not any(code in cited for code in _codes_of(v))]
    return sorted(dict.fromkeys(visas), key=_visa_rank)


_NOTAMMENT = re.compile(
    r"^(?P<code>[^,]{1,120}), notamment (?:son|ses) articles? (?P<articles>.+)$"
)


def _merged(texts: list[str]) -> list[str]:
    """One visa per code: « Code de la route, notamment ses articles R. 411-8 » and « …
    L. 325-1 » read « Code de la route, notamment ses articles R. 411-8, L. 325-1 »."""
    by_code: dict[str, list[str]] = {}
    for text in texts:
        match = _NOTAMMENT.match(text)
        code, articles = (match["code"], match["articles"]) if match else (text, "")
        by_code.setdefault(code, [])
        if articles:
            by_code[code] += [a for a in re.split(r",\s|\set\s", articles) if a]
    visas = []
    for code, articles in by_code.items():
        unique = list(dict.fromkeys(articles))
        if not unique:
            visas.append(_visa(code))
        elif len(unique) == 1:
            visas.append(_visa(f"{code}, notamment son article {unique[0]}"))
        else:
            listed = ", ".join(unique[:-1]) + " et " + unique[-1]
            visas.append(_visa(f"{code}, notamment ses articles {listed}"))
    return visas


def _codes_of(visa: str) -> tuple[str, ...]:
    folded = _fold(visa)
    return tuple(c for c in ("collectivites territoriales", "code de la route") if c in folded)


_OPEN_ENDED = re.compile(
    r"jusqu'(?:à|a|au)\s+(?:la\s+fin|l'achèvement|l'issue|la\s+réalisation)\s+des\s+travaux"
    r"(?:\s+de\s+[\w'’ -]{1,60}?)?(?=\s*[.;,]|\s*$)",
    re.IGNORECASE,
)
_DATED = re.compile(
    r"\b(?:janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre"
    r"|novembre|décembre|decembre|même\s+(?:jour|période)|mêmes\s+jours|\d{1,2}/\d{1,2})\b",
    re.IGNORECASE,
)
_REQUEST_DATE = re.compile(
    r"demand\w{0,6}\s+(?:\w+\s+){0,4}?le\s+(\d{1,2}(?:er)?\s+[a-zéû]{3,9}\s+\d{4})", re.IGNORECASE
)


def _period(
    data: dict[str, Any], provisions: list[str], rewritten: list[str], matters: set[str]
) -> list[str]:
    """Every restrictive measure within dates (proportionality): an article when some
    provision does not say its own, and never an open-ended « jusqu'à la fin des travaux »."""
    start, end = data.get("start_date"), data.get("end_date")
    undated = [p for p in provisions if not _DATED.search(p)]
    if start or end:
        if not undated:
            return []
        if start and start == end:
            return [f"Les mesures du présent arrêté s'appliquent le {french_date(start)}."]
        if end:
            return [
                f"Les mesures du présent arrêté s'appliquent du {french_date(start)} au "
                f"{french_date(end)} inclus."
            ]
        return [f"Les mesures du présent arrêté s'appliquent à compter du {french_date(start)}."]
    if any("jusqu'a l'arrete levant" in _fold(p) for p in rewritten):
        return []
    if "chemin_rural" in matters or any(_OPEN_ENDED.search(p) for p in provisions):
        return [
            "Les mesures du présent arrêté restent en vigueur jusqu'à l'arrêté qui les lèvera, "
            "pris après constat de la disparition du danger."
        ]
    if undated and matters & {"circulation_stationnement", "fourriere", "chantier_sur_voie"}:
        dated = [index for index, p in enumerate(provisions, start=1) if _DATED.search(p)]
        if dated:
            # « Une déviation est mise en place » lasts as long as the dated ban it serves.
            return [
                "Les mesures du présent arrêté s'appliquent aux dates et heures fixées à "
                f"l'article {_article_number(dated[0])}."
            ]
        return [
            f"Les mesures du présent arrêté s'appliquent du {TO_COMPLETE} au {TO_COMPLETE} inclus."
        ]
    return []


def _matter_articles(data: dict[str, Any], said: str, matters: set[str]) -> list[str]:
    articles = []
    if "occupation_domaine_public" in matters:
        if "precaire" not in said:
            articles.append(
                "La présente autorisation est délivrée à titre personnel, précaire et révocable ; "
                "elle ne peut être cédée. Les droits des tiers sont et demeurent réservés."
            )
        if "signalisation" not in said:
            articles.append(
                "Le bénéficiaire met en place et entretient, à ses frais, la signalisation de "
                "l'occupation conforme à l'instruction interministérielle sur la signalisation "
                "routière (huitième partie), et remet les lieux en état à la fin de l'occupation."
            )
        if "redevance" not in said and "exoner" not in said:
            articles.append(
                "L'occupation donne lieu au paiement de la redevance fixée par la délibération "
                f"du conseil municipal du {TO_COMPLETE}, ou en est exonérée pour le motif "
                f"suivant : {TO_COMPLETE} (CGPPP, art. L. 2125-1)."
            )
    if "chemin_rural" in matters and "secours" not in said:
        articles.append(
            "Ces interdictions ne s'appliquent ni aux véhicules de secours, ni aux services "
            "techniques municipaux, ni aux personnes chargées des études ou des travaux."
        )
    traffic = matters & {"circulation_stationnement", "fourriere", "manifestation_sportive"}
    if traffic and "signalisation" not in said:
        articles.append(
            f"La signalisation réglementaire est mise en place et entretenue par {TO_COMPLETE}."
        )
    return articles


def compose_arrete(data: dict[str, Any], identity: dict[str, Any]) -> str:
    commune = identity["commune_name"]
    found = matters_for_request("arrete", data)
    matters = {m.key for m in found}
    life = act_life("arrete", found, identity)
    police = not matters or not matters <= {"occupation_domaine_public"}
    defaults = [
        "Vu le Code général des collectivités territoriales, notamment ses articles "
        "L. 2212-1 et L. 2212-2 ;"
    ]
    visas = _visas(data, found, defaults)
    if life.individual and not any("demande" in _fold(v) for v in visas):
        asked = _REQUEST_DATE.search(data["context"])
        visas.append(f"Vu la demande présentée le {asked[1] if asked else TO_COMPLETE} ;")
    elif "chantier_sur_voie" in matters and not any("demande" in _fold(v) for v in visas):
        visas.append(
            f"Vu la demande présentée le {TO_COMPLETE} par {TO_COMPLETE} (maître d'ouvrage ou "
            "entreprise chargée des travaux) ;"
        )
    considerants = [_considerant(s) for s in _sentences(data["context"]) if not _private(s)]
    considerants.append(
        "Considérant qu'il appartient au maire de prendre les mesures nécessaires pour assurer "
        "le bon ordre, la sûreté, la sécurité et la salubrité publiques ;"
        if police
        else "Considérant que l'occupation demandée est compatible avec l'affectation du domaine "
        "public, sous réserve des prescriptions du présent arrêté ;"
    )
    provisions = [
        _OPEN_ENDED.sub("jusqu'à l'arrêté levant la mesure", p) for p in data["provisions"]
    ]
    said = _fold(" ".join(provisions))
    articles = [*provisions, *_period(data, data["provisions"], provisions, matters)]
    location = (data.get("location") or "").strip().rstrip(".")
    if location and _fold(location.split(",")[0]) not in said:
        articles.append(f"Les dispositions du présent arrêté s'appliquent : {location}.")
    articles += _matter_articles(data, said, matters)
    articles.append(
        f"{_executing_secretary(identity)} de mairie, le commandant de la brigade de gendarmerie "
        "territorialement compétente et toute autorité de police sont chargés, chacun en ce qui "
        f"le concerne, de l'exécution du présent arrêté, qui sera {life.publicity()}."
    )
    title, name = _signatory(data, identity)
    lines = [
        f"# Arrêté du maire n° {data.get('number') or TO_COMPLETE}",
        "",
        f"## {data['subject'].rstrip('.')}",
        "",
        f"Le Maire de la commune de {commune},",
        "",
    ]
    for paragraph in [*visas, *considerants]:
        lines += [paragraph, ""]
    lines += ["**ARRÊTE**", ""]
    for index, text in enumerate(articles, start=1):
        lines += [f"**Article {_article_number(index)}** : {text.strip()}", ""]
    lines += [f"Fait à {commune}, le {TO_COMPLETE}", "", f"{title},", name, ""]
    lines += [
        "---",
        "",
        life.transmission_sentence(),
        "",
        life.certificate(f"{lower_first(title)}"),
        "",
    ]
    lines.append(_appeal("Le présent arrêté", identity["tribunal_administratif"]))
    return "\n".join(lines) + "\n"


def compose_deliberation(data: dict[str, Any], identity: dict[str, Any]) -> str:
    commune = identity["commune_name"]
    found = matters_for_request("deliberation", data)
    life = act_life("deliberation", found, identity)
    title, president = _signatory(data, identity)
    defaults = [
        "Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;"
    ]
    visas = _visas(data, found, defaults)
    if "budget" in _fold(" ".join(data["decisions"])):
        visas.append("Vu le budget primitif de l'exercice en cours ;")
    lines = [
        f"# Délibération n° {data.get('number') or TO_COMPLETE} du conseil municipal de {commune}",
        "",
        f"## {data['subject'].rstrip('.')}",
        "",
    ]
    for line in session_lines(data, commune, president):
        lines += [line, ""]
    # The visas first, in the order of the norms, then the exposé they frame (Guide de
    # légistique: what the act rests on precedes why it is taken).
    for visa in sorted(dict.fromkeys(visas), key=_visa_rank):
        lines += [visa, ""]
    if data.get("rapporteur"):
        lines += [f"Rapporteur : {data['rapporteur']}", ""]
    lines += ["### Exposé", "", data["context"].strip(), ""]
    lines += [
        "Considérant l'exposé qui précède et l'intérêt pour la commune de se prononcer sur "
        "cette question ;",
        "",
        "Après en avoir délibéré, le conseil municipal **DÉCIDE** :",
        "",
    ]
    articles = [_end(decision(d), ".") for d in data["decisions"]]
    articles += matter_articles(data, {m.key for m in found})
    articles.append(
        "Le Maire est chargé de l'exécution de la présente délibération, qui sera "
        f"{life.publicity()}."
    )
    for index, text in enumerate(articles, start=1):
        lines += [f"**Article {_article_number(index)}** : {text}", ""]
    lines += [vote_line(data), ""]
    lines += [f"Fait à {commune}, le {french_date(data.get('session_date'))}", ""]
    lines += [*signature_lines(data, president, f"{title}"), ""]
    lines += ["---", "", life.transmission_sentence(), "", life.certificate("le Maire"), ""]
    lines.append(_appeal("La présente délibération", identity["tribunal_administratif"]))
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
    "courrier": letters.compose_courrier,
    "bulletin_article": letters.compose_bulletin,
    "synthese": compose_synthese,
}


def compose(kind: str, payload: dict[str, Any]) -> str | None:
    composer = COMPOSERS.get(kind)
    if composer is None:
        return None
    return composer(payload["request"], payload["identity"])
