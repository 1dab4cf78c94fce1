"""Parse a Markdown act, written by a model or by the offline composer, into its Sections."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum, auto

from plume.drafting.document import ACT_KINDS, Article, DraftWarning, Sections

UNPARSED_ANSWER = "unparsed_answer"
UNPARSED_MESSAGE = (
    "Le texte n'a pas pu être découpé en parties : aucun article (« Article 1er », "
    "« Article 2 »…) n'a été reconnu. Il est conservé tel quel ; relisez-le et structurez-le "
    "en articles numérotés avant toute signature."
)

_I = re.IGNORECASE

# --- Markdown clean-up -------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(?:```|~~~)")
_QUOTE = re.compile(r"^(?:>\s?)+")
_HEADING = re.compile(r"^(#{1,6})\s*(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(?P<marker>[-*+•–—]|\d{1,2}[.)])\s+")
_RULE = re.compile(r"^(?:-\s*){3,}$|^(?:\*\s*){3,}$")
_BOLD_ONLY = re.compile(r"^\*\*[^*].*\*\*\s*[:.]?$")
_BOLD_ARTICLE_LABEL = re.compile(r"^\*\*\s*art(?:icle|\.)\s*[^*]{1,25}?\*\*", _I)
_HTML_TAG = re.compile(r"</?(?:sup|sub|b|strong|i|em|u|span|p|br)\b[^>]*>", _I)
_SPACES = re.compile(r"[ \t\u00a0\u202f]+")

# --- Line classes (tried in this order: the earlier, more specific patterns win) ---------------

_ARTICLE = re.compile(
    r"^art(?:icle|\.)\s*"
    r"(?P<num>premier|premi[eè]re|unique|\d{1,3}\s*(?:er|ᵉʳ)?|(?-i:[IVX]{1,5})"
    r"|un|deux|trois|quatre|cinq|six|sept|huit|neuf|dix)"
    r"(?P<sep>\s*[:.–—-]+\s*|\s*$|\s+)(?P<rest>.*)$",
    _I | re.S,
)
_VISA_INTRO = re.compile(r"^(?:vu|visas?)\s*:?\s*$", _I)
_VISA = re.compile(r"^vu\b\s*[,:]?\s*(?P<rest>.+)$", _I | re.S)
_CONSIDERANT_INTRO = re.compile(r"^consid[ée]rants?\s*:?\s*$", _I)
_CONSIDERANT = re.compile(r"^(?P<word>consid[ée]rant|attendu)\b\s*[,:]?\s*(?P<rest>.+)$", _I | re.S)
_SIGNATURE = re.compile(
    r"^(?:ainsi\s+)?fait\s+(?:et\s+d[ée]lib[ée]r[ée]\s*)?(?:[àa]\s|en\s|les?\s|,)"
    r"|^(?:ainsi\s+)?fait\s+et\s+d[ée]lib[ée]r[ée]"
    r"|^pour\s+extrait\s+(?:certifi[ée]\s+)?conforme"
    r"|^d[ée]lib[ée]r[ée]\s+en\s+s[ée]ance"
    r"|^(?-i:[AÀ])\s+(?-i:[A-ZÀ-Ý])[^,]{0,60},\s*le\b",
    _I,
)
_CAPITALISED_NAME = r"(?-i:[A-ZÀ-Ý])[\w'’-]*(?:\s+(?-i:[A-ZÀ-Ý])[\w'’-]*)*"
# A signatory line is short and verbless ("Le Maire,", "La Maire de La Haye, Anne Martin"):
# "Le Maire est chargé de…" inside an article must not end the article.
_SIGNATORY = re.compile(
    r"^(?:pour\s+le\s+maire(?:\s+et\s+par\s+d[ée]l[ée]gation)?"
    r"|(?:le|la)\s+maire|l['’]adjointe?(?:\s+au\s+maire)?"
    r"|(?:le|la)\s+(?:premi[eè]re?\s+)?adjointe?(?:\s+au\s+maire)?"
    r"|(?:le|la)\s+pr[ée]sidente?|(?:le|la)\s+secr[ée]taire\s+de\s+s[ée]ance)"
    rf"(?:\s+(?:de\s+(?:la\s+commune\s+de\s+)?|d['’]){_CAPITALISED_NAME})?"
    r"(?:\s*,\s*[^,.;:]{2,60}|\s*,)?\s*$"
    r"|^sign[ée]\s*:|^[\[(]\s*signature",
    _I,
)
_MENTION_ANYWHERE = re.compile(
    r"peut\s+faire\s+l['’]objet\s+d['’]un\s+recours"
    r"|voies?\s+et\s+d[ée]lais?\s+de\s+recours|d[ée]lais?\s+et\s+voies?\s+de\s+recours"
    r"|t[ée]l[ée]recours"
    r"|avec\s+l['’]assistance\s+d['’]un\s+syst[èe]me\s+d['’]intelligence\s+artificielle"
    r"|^(?:document|texte|projet)\b.{0,60}\bintelligence\s+artificielle",
    _I,
)
# "… peut être contesté devant le tribunal administratif de Rouen dans un délai de deux mois"
# is an appeal mention too, without the word "recours".
_APPEAL_VERB = re.compile(r"\brecours\b|\bcontest|\bd[ée]f[ée]r[ée]|\battaqu", _I)
_APPEAL_DETAIL = re.compile(r"tribunal\s+administratif|\b(?:deux|2)\s+mois\b", _I)
_MENTION_START = re.compile(
    r"^(?:ampliation"
    r"|copie\s+(?:du\s+pr[ée]sent\s+\w+\s+)?(?:sera\s+)?(?:adress|transmis|notifi)"
    r"|certifi[ée]e?\s+ex[ée]cutoire|(?:acte\s+)?rendue?\s+ex[ée]cutoire"
    r"|transmise?\s+(?:au\s+repr[ée]sentant|en\s+(?:sous-)?pr[ée]fecture"
    r"|[àa]\s+la\s+(?:sous-)?pr[ée]fecture|au\s+contr[ôo]le|au\s+pr[ée]fet)"
    r"|re[çc]ue?\s+en\s+(?:sous-)?pr[ée]fecture"
    r"|publi[ée]e?\s+(?:le|sur|au|en)\b|affich[ée]e?\s+(?:le|en|du)\b"
    r"|date\s+(?:de\s+(?:la\s+)?|d['’])?(?:publication|affichage|transmission|notification"
    r"|mise\s+en\s+ligne)"
    r"|notifi[ée]e?\s+(?:le|[àa])\b|mise?\s+en\s+ligne\s+le)",
    _I,
)
# A "Note :" before the act is the model talking; after the dispositif it is a closing note.
_NOTE = re.compile(r"^(?:mentions?|avertissement|note)\s*:", _I)
_CLOSING_HEADING = re.compile(
    r"^(?:mentions?(?:\s+l[ée]gales|\s+obligatoires)?"
    r"|voies?\s+et\s+d[ée]lais?\s+de\s+recours|d[ée]lais?\s+et\s+voies?\s+de\s+recours|recours"
    r"|signatures?|publication|ampliation|notification|avertissement|transparence"
    r"|caract[èe]re\s+ex[ée]cutoire)\s*:?\s*$",
    _I,
)
_VOTE_START = re.compile(
    r"^(?:r[ée]sultats?\s+(?:du\s+)?votes?|votes?|scrutin)\s*:"
    r"|^(?:pour|votants|suffrages\s+exprim[ée]s)\s*:\s*\S"
    r"|^(?:adopt[ée]e?|approuv[ée]e?|rejet[ée]e?)s?\b"
    r"|^(?:la\s+(?:pr[ée]sente\s+)?d[ée]lib[ée]ration|la\s+proposition)\s+est\s+"
    r"(?:adopt|approuv|rejet)"
    r"|^[àa]\s+l['’]unanimit[ée]|^unanimit[ée]|^nombre\s+de\s+votants|^\d+\s+voix\s+pour",
    _I,
)
VOTE_ANYWHERE = re.compile(
    r"\bunanimit[ée]|\b\d+\s+voix\b|\bvotes?\s*:"
    r"|\bpour\s*:?\s*(?:\d+|_{2,}|…|\.{3})\s*[,;–—-]?\s*contre\b",
    _I,
)
_DISPOSITIF = re.compile(
    r"^(?:le\s+maire\b.{0,120}?)?\barr[êe]te\s*:?\s*$"
    r"|(?-i:\bARR[ÊE]TE)\s*:?\s*$"
    r"|^(?:le\s+conseil\s+municipal\b.{0,160}?)?\bd[ée]cide\s*:?\s*$"
    r"|(?-i:\bD[ÉE]CIDE\b)"
    r"|apr[èe]s\s+en\s+avoir\s+d[ée]lib[ée]r[ée]"
    r"|^d[ée]lib[èe]re\s*:?\s*$",
    _I,
)
_SESSION = re.compile(
    r"^(?:s[ée]ance\s+(?:publique\s+|ordinaire\s+|extraordinaire\s+)?du\b"
    r"|l['’]an\s+(?:deux\s+mille|\d{4})"
    r"|date\s+de\s+(?:la\s+)?convocation|convocation\s+(?:du|le|en\s+date)"
    r"|nombre\s+de\s+(?:conseillers|membres)|(?:conseillers|membres)\s+en\s+exercice"
    r"|pr[ée]sents?\s*:|absents?\b|excus[ée]e?s?\b|pouvoirs?\s*:|procurations?\s*:"
    r"|secr[ée]taire\s+de\s+s[ée]ance|quorum|[ée]taient\s+pr[ée]sents"
    r"|rapporteure?\s*:)"
    r"|s['’]est\s+r[ée]uni|r[ée]guli[èe]rement\s+convoqu[ée]",
    _I,
)
_EXPOSE_HEADING = re.compile(
    r"^(?:expos[ée](?:\s+des\s+motifs)?|rapport(?:\s+de\s+pr[ée]sentation)?|pr[ée]sentation)"
    r"\s*(?::\s*(?P<rest>.*))?$",
    _I | re.S,
)
_EXPOSE_START = re.compile(
    r"^(?:(?:m\.|mme|monsieur|madame)\s+)?(?:le|la|l['’])\s*"
    r"(?:maire|rapporteure?|adjointe?|premi[eè]re?\s+adjointe?|pr[ée]sidente?)\b"
    r".{0,120}?\b(?:expose|pr[ée]sente|rappelle|informe)\b"
    r"|^(?:m\.|mme|monsieur|madame)\s+(?:le|la)\s+rapporteure?\b",
    _I | re.S,
)
_OBJET = re.compile(r"^objet\s*:\s*(?P<rest>.+)$", _I | re.S)
_OBJECT_LINE = re.compile(
    r"^(?:portant|relatif|relative|r[ée]glementant|fixant|concernant|instituant|prescrivant"
    r"|autorisant|interdisant)\b",
    _I,
)
# Act-type headers ("Arrêté du maire n° 2027-___", "Délibération du conseil municipal de La Haye")
# say what the document is, not what it is about: the object line after them is the title.
# "n° 2027-015", "n° 2027-___", or the offline composer's "n° [À COMPLÉTER]".
_ACT_NUMBER = r"(?:n[°o]|num[ée]ro)\s*(?:\[[^\]]*\]|\S*)"
_GENERIC_HEADER = re.compile(
    r"^(?:arr[êeé]t[ée](?:\s+(?:du\s+maire|municipal|temporaire|permanent"
    rf"|{_ACT_NUMBER}|(?:de\s+la\s+commune\s+)?(?:de|d['’])\s*{_CAPITALISED_NAME}))*"
    rf"|d[ée]lib[ée]ration(?:\s+(?:du\s+conseil\s+municipal|{_ACT_NUMBER}"
    rf"|(?:de\s+la\s+commune\s+)?(?:de|d['’])\s*{_CAPITALISED_NAME}))*"
    r"|conseil\s+municipal(?:\s+(?:de|d['’])\s*.*)?)\s*[.:,]?\s*$"
    r"|^(?:extrait\b|r[ée]publique\s+fran[çc]aise|libert[ée]\s*[,.]?\s*[ée]galit[ée]"
    r"|d[ée]partement\b|commune\s+(?:de|d['’])|mairie\s+(?:de|d['’])|ville\s+(?:de|d['’])"
    r"|registre\b|proc[èe]s-verbal|(?:le|la)\s+maire\b|le\s+conseil\s+municipal\b)",
    _I,
)
_HEADER_WITH_OBJECT = re.compile(r"^(?P<head>.+?)\s*[:–—]\s+(?P<rest>.+)$", re.S)
_CHATTER = re.compile(
    r"^(?:voici\b|n['’]h[ée]sitez|je\s+(?:reste|peux|vous|ne|suis)|j['’]esp[èe]re"
    r"|bien\s+s[ûu]r\b|certainement\b|avec\s+plaisir\b|remarques?\s*:)",
    _I,
)

_NUMBER_WORDS = {
    "premier": 1, "premiere": 1, "première": 1, "un": 1, "deux": 2, "trois": 3, "quatre": 4,
    "cinq": 5, "six": 6, "sept": 7, "huit": 8, "neuf": 9, "dix": 10,
}  # fmt: skip
_ROMAN = {"i": 1, "v": 5, "x": 10}

# Past this length a paragraph after the signature is a note, not a signatory line.
_SIGNATURE_LINE_MAX = 150


@dataclass(frozen=True)
class ActParts:
    """Everything the parser recognised, finer than Sections (séance, exposé, vote…)."""

    title: str | None = None
    visas: list[str] = field(default_factory=list)
    considerants: list[str] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    # In document order: séance lines, vote, then closing mentions, as Sections.mentions holds them.
    mentions: list[str] = field(default_factory=list)
    signature: str | None = None
    session: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    dispositif: str | None = None
    votes: list[str] = field(default_factory=list)
    closing: list[str] = field(default_factory=list)
    preamble: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    warnings: list[DraftWarning] = field(default_factory=list)

    def sections(self) -> Sections:
        return Sections(
            title=self.title,
            visas=list(self.visas),
            considerants=list(self.considerants),
            articles=[article.model_copy() for article in self.articles],
            mentions=list(self.mentions),
            signature=self.signature,
        )


def parse_act(kind: str, text: str) -> tuple[Sections, list[DraftWarning]]:
    """Sections of an arrêté or délibération; never raises. Other kinds give empty Sections."""
    if kind not in ACT_KINDS:
        return Sections(), []
    parts = parse_act_parts(kind, text)
    return parts.sections(), list(parts.warnings)


def parse_act_parts(kind: str, text: str) -> ActParts:
    """The finer-grained parse behind parse_act; never raises either."""
    builder = _Builder(deliberation=kind == "deliberation")
    try:
        for line in _lines(text or ""):
            builder.feed(line)
        return builder.result()
    except Exception:
        # A parser bug must not fail the draft: the text is kept and the agent is told.
        return ActParts(warnings=[DraftWarning(code=UNPARSED_ANSWER, message=UNPARSED_MESSAGE)])


# --- Implementation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    text: str  # without heading, list or emphasis markers
    body: str  # the same, keeping the list marker: article bodies keep their lists
    heading: bool  # a Markdown heading or a line wholly in bold
    bold_article_label: bool
    bullet: bool
    rule: bool
    blank_before: bool


@dataclass
class _Block:
    text: str = ""

    def add(self, piece: str, sep: str) -> None:
        self.text = f"{self.text}{sep}{piece}" if self.text else piece


class _State(Enum):
    HEADER = auto()
    SESSION = auto()
    EXPOSE = auto()
    VISAS = auto()
    CONSIDERANTS = auto()
    DISPOSITIF = auto()
    ARTICLES = auto()
    CLOSING = auto()
    SIGNATURE = auto()


class _Class(Enum):
    ARTICLE = auto()
    VISA_INTRO = auto()
    VISA = auto()
    CONSIDERANT_INTRO = auto()
    CONSIDERANT = auto()
    SIGNATURE = auto()
    SIGNATORY = auto()
    MENTION = auto()
    CLOSING_HEADING = auto()
    VOTE = auto()
    DISPOSITIF = auto()
    SESSION = auto()
    EXPOSE_HEADING = auto()
    EXPOSE = auto()
    OBJET = auto()
    CHATTER = auto()
    RULE = auto()
    TEXT = auto()


# Inside an article, only these end it; anything else (lists, sub-paragraphs) belongs to it.
_ENDS_ARTICLE = frozenset(
    {
        _Class.ARTICLE,
        _Class.SIGNATURE,
        _Class.SIGNATORY,
        _Class.MENTION,
        _Class.CLOSING_HEADING,
        _Class.VOTE,
        _Class.RULE,
        _Class.CHATTER,
    }
)
_AFTER_DISPOSITIF = frozenset(
    {_State.DISPOSITIF, _State.ARTICLES, _State.CLOSING, _State.SIGNATURE}
)


def _lines(text: str) -> Iterator[_Line]:
    blank_before = True
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE.match(raw):
            blank_before = True
            continue
        line = _clean(raw, blank_before)
        if line is None:
            blank_before = True
            continue
        blank_before = False
        yield line


def _clean(raw: str, blank_before: bool) -> _Line | None:
    s = _QUOTE.sub("", raw.strip()).strip()
    if not s:
        return None
    if _RULE.match(s):
        return _Line("", "", False, False, False, True, blank_before)
    heading = False
    if m := _HEADING.match(s):
        heading = True
        s = m.group(2)
    marker = ""
    bullet = False
    if m := _BULLET.match(s):
        bullet = True
        marker = m.group("marker")
        s = s[m.end() :]
    bold_article_label = bool(_BOLD_ARTICLE_LABEL.match(s))
    heading = heading or bool(_BOLD_ONLY.match(s) and s.count("**") == 2)
    s = _HTML_TAG.sub("", s.replace("**", "")).replace("\\", "")
    s = _strip_wrapping(s)
    s = _SPACES.sub(" ", s).strip()
    if not s:
        return None
    body = f"{marker} {s}" if bullet else s
    return _Line(s, body, heading, bold_article_label, bullet, False, blank_before)


def _strip_wrapping(s: str) -> str:
    # Italic notes ("*Le présent arrêté peut…*"), possibly spread over several lines; a run of
    # "_" stays: it is the blank left to fill in ("Fait à La Haye, le ______").
    if len(s) > 2 and s[0] == s[-1] and s[0] in "*_" and s[1] not in "*_ ":
        return s[1:-1].strip()
    if len(s) > 1 and s[0] in "*_" and s[1] not in "*_ ":
        s = s[1:]
    if len(s) > 1 and s[-1] in "*_" and s[-2] not in "*_ ":
        s = s[:-1]
    return s.strip()


def _normalise_number(raw: str) -> str:
    label = re.sub(r"\s+", "", raw).lower().replace("ᵉʳ", "er")
    if label == "unique":
        return label
    if label.endswith("er") and label[:-2].isdigit():
        label = label[:-2]
    if label.isdigit():
        number = int(label)
    elif label in _NUMBER_WORDS:
        number = _NUMBER_WORDS[label]
    elif label and all(char in _ROMAN for char in label):
        number = _roman(label)
    else:
        return raw.strip()
    return "1er" if number == 1 else str(number)


def _roman(token: str) -> int:
    total = 0
    for i, char in enumerate(token):
        value = _ROMAN[char]
        following = _ROMAN[token[i + 1]] if i + 1 < len(token) else 0
        total += -value if value < following else value
    return total


def _title_text(text: str) -> str:
    return text.strip().rstrip(":,;").strip()


class _Builder:
    def __init__(self, *, deliberation: bool) -> None:
        self.deliberation = deliberation
        self.state = _State.HEADER
        self.current: _Block | None = None
        self.current_sep = " "
        self.list_prefix: str | None = None
        self.objet: str | None = None
        self.headings: list[tuple[str, bool]] = []  # (text, generic)
        self.object_lines: list[str] = []
        self.visas: list[_Block] = []
        self.considerants: list[_Block] = []
        self.articles: list[tuple[str, _Block]] = []
        self.mentions: list[_Block] = []
        self.session: list[_Block] = []
        self.expose: list[_Block] = []
        self.votes: list[_Block] = []
        self.closing: list[_Block] = []
        self.preamble: list[_Block] = []
        self.other: list[_Block] = []
        self.dispositif: str | None = None
        self.signature: _Block | None = None

    # -- classification --

    def classify(self, line: _Line) -> tuple[_Class, re.Match[str] | None]:
        if line.rule:
            return _Class.RULE, None
        text = line.text
        if m := _ARTICLE.match(text):
            explicit = line.heading or line.bold_article_label
            if explicit or m.group("sep").strip() or not m.group("rest"):
                return _Class.ARTICLE, m
        if _VISA_INTRO.match(text):
            return _Class.VISA_INTRO, None
        if m := _VISA.match(text):
            return _Class.VISA, m
        if _CONSIDERANT_INTRO.match(text):
            return _Class.CONSIDERANT_INTRO, None
        if m := _CONSIDERANT.match(text):
            return _Class.CONSIDERANT, m
        if _SIGNATURE.match(text):
            return _Class.SIGNATURE, None
        if self.state in _AFTER_DISPOSITIF and _SIGNATORY.match(text):
            return _Class.SIGNATORY, None
        if _CLOSING_HEADING.match(text):
            return _Class.CLOSING_HEADING, None
        if _MENTION_ANYWHERE.search(text) or _MENTION_START.match(text):
            return _Class.MENTION, None
        if _APPEAL_VERB.search(text) and _APPEAL_DETAIL.search(text):
            return _Class.MENTION, None
        if _NOTE.match(text):
            return (_Class.MENTION if self.state in _AFTER_DISPOSITIF else _Class.TEXT), None
        if _CHATTER.match(text):
            return _Class.CHATTER, None
        if self.deliberation:
            if _VOTE_START.match(text):
                return _Class.VOTE, None
            if _DISPOSITIF.search(text):
                # "…, à l'unanimité, DÉCIDE" after the articles is the vote line.
                if self.state is _State.ARTICLES and VOTE_ANYWHERE.search(text):
                    return _Class.VOTE, None
                return _Class.DISPOSITIF, None
            if _SESSION.search(text):
                return _Class.SESSION, None
            if m := _EXPOSE_HEADING.match(text):
                return _Class.EXPOSE_HEADING, m
            if _EXPOSE_START.match(text):
                return _Class.EXPOSE, None
        elif _DISPOSITIF.search(text):
            return _Class.DISPOSITIF, None
        if m := _OBJET.match(text):
            return _Class.OBJET, m
        return _Class.TEXT, None

    # -- state machine --

    def feed(self, line: _Line) -> None:
        cls, m = self.classify(line)
        if cls is _Class.CHATTER:
            self.current = None
            return
        if self.state is _State.ARTICLES and cls not in _ENDS_ARTICLE:
            self.articles[-1][1].add(line.body, "\n\n" if line.blank_before else "\n")
            return
        if cls is _Class.ARTICLE:
            assert m is not None
            block = _Block()
            if rest := m.group("rest").strip():
                block.add(rest, "")
            self.articles.append((_normalise_number(m.group("num")), block))
            self._enter(_State.ARTICLES, None)
        elif cls is _Class.VISA_INTRO:
            self._enter(_State.VISAS, None, list_prefix="Vu")
        elif cls is _Class.VISA:
            assert m is not None
            self._start(self.visas, f"Vu {m.group('rest')}", _State.VISAS, keep_prefix=True)
        elif cls is _Class.CONSIDERANT_INTRO:
            self._enter(_State.CONSIDERANTS, None, list_prefix="Considérant")
        elif cls is _Class.CONSIDERANT:
            assert m is not None
            word = "Considérant" if m.group("word").lower().startswith("consid") else "Attendu"
            self._start(
                self.considerants,
                f"{word} {m.group('rest')}",
                _State.CONSIDERANTS,
                keep_prefix=True,
            )
        elif cls is _Class.SIGNATURE or cls is _Class.SIGNATORY:
            if self.signature is None:
                self.signature = _Block()
            self.signature.add(line.text, "\n")
            self._enter(_State.SIGNATURE, self.signature, sep="\n")
        elif cls is _Class.MENTION:
            self._mention(self.closing, line.text, _State.CLOSING)
        elif cls is _Class.VOTE:
            self._mention(self.votes, line.text, _State.CLOSING)
        elif cls is _Class.CLOSING_HEADING:
            self._enter(_State.CLOSING, None)
        elif cls is _Class.RULE:
            # A rule after the articles or the signature opens the closing notes.
            after = self.state in (_State.ARTICLES, _State.SIGNATURE)
            self._enter(_State.CLOSING if after else self.state, None)
        elif cls is _Class.DISPOSITIF:
            self.dispositif = self.dispositif or line.text
            if VOTE_ANYWHERE.search(line.text):
                self._mention(self.votes, line.text, _State.DISPOSITIF)
            self._enter(_State.DISPOSITIF, None)
        elif cls is _Class.SESSION:
            self._mention(self.session, line.text, _State.SESSION)
        elif cls is _Class.EXPOSE_HEADING:
            assert m is not None
            self._enter(_State.EXPOSE, None)
            if rest := (m.group("rest") or "").strip():
                self._start(self.expose, rest, _State.EXPOSE)
        elif cls is _Class.EXPOSE:
            self._start(self.expose, line.text, _State.EXPOSE)
        elif cls is _Class.OBJET:
            assert m is not None
            if self.objet is None and not self.articles:
                self.objet = _title_text(m.group("rest"))
            self.current = None
        else:
            self._text(line)

    def _enter(
        self,
        state: _State,
        current: _Block | None,
        *,
        sep: str = " ",
        list_prefix: str | None = None,
    ) -> None:
        self.state = state
        self.current = current
        self.current_sep = sep
        self.list_prefix = list_prefix

    def _start(
        self, target: list[_Block], text: str, state: _State, *, keep_prefix: bool = False
    ) -> None:
        block = _Block(text)
        target.append(block)
        prefix = self.list_prefix if keep_prefix and self.state is state else None
        self._enter(state, block, list_prefix=prefix)

    def _mention(self, target: list[_Block], text: str, state: _State) -> None:
        block = _Block(text)
        target.append(block)
        self.mentions.append(block)
        self._enter(state, block, sep="\n")

    def _text(self, line: _Line) -> None:
        state = self.state
        if state is _State.SIGNATURE:
            if line.blank_before and len(line.text) > _SIGNATURE_LINE_MAX:
                self._mention(self.closing, line.text, _State.CLOSING)
            else:
                assert self.signature is not None
                self.signature.add(line.text, "\n")
            return
        if self.list_prefix and line.bullet and state in (_State.VISAS, _State.CONSIDERANTS):
            target = self.visas if state is _State.VISAS else self.considerants
            self._start(target, f"{self.list_prefix} {line.text}", state, keep_prefix=True)
            return
        # A list right under a note ("Ampliation sera adressée à :") belongs to that note.
        continues = not line.blank_before or (line.bullet and state is _State.CLOSING)
        if self.current is not None and continues:
            if line.bullet:
                self.current.add(line.body, "\n")
            else:
                self.current.add(line.text, self.current_sep)
            return
        if state is _State.CLOSING:
            self._mention(self.closing, line.text, _State.CLOSING)
        elif state is _State.HEADER or (state is _State.SESSION and line.heading):
            self._header_text(line)
        elif state in (_State.SESSION, _State.EXPOSE):
            self._start(self.expose, line.text, _State.EXPOSE)
        else:
            self.other.append(_Block(line.text))
            self.current = self.other[-1]
            self.current_sep = " "

    def _header_text(self, line: _Line) -> None:
        text = _title_text(line.text)
        if line.heading:
            # "Délibération n° 2027-015 : Tarifs de la cantine" carries its object after the colon.
            split = _HEADER_WITH_OBJECT.match(text)
            if split and _GENERIC_HEADER.match(split.group("head")):
                text = split.group("rest")
            self.headings.append((text, bool(_GENERIC_HEADER.match(text))))
            self.current = None
        elif _OBJECT_LINE.match(text):
            self.object_lines.append(text)
            self.current = None
        else:
            block = _Block(line.text)
            self.preamble.append(block)
            self.current = block
            self.current_sep = " "

    def _title(self) -> str | None:
        if self.objet:
            return self.objet
        specific = [text for text, generic in self.headings if not generic and text]
        if specific:
            return specific[0]
        if self.object_lines:
            return self.object_lines[0]
        generic = [text for text, _ in self.headings if text]
        return generic[0] if generic else None

    def result(self) -> ActParts:
        def texts(blocks: list[_Block]) -> list[str]:
            return [b.text.strip() for b in blocks if b.text.strip()]

        articles = [Article(number=n, text=b.text.strip()) for n, b in self.articles]
        warnings = []
        if not articles:
            warnings.append(DraftWarning(code=UNPARSED_ANSWER, message=UNPARSED_MESSAGE))
        signature = self.signature.text.strip() if self.signature else None
        return ActParts(
            title=self._title(),
            visas=texts(self.visas),
            considerants=texts(self.considerants),
            articles=articles,
            mentions=texts(self.mentions),
            signature=signature or None,
            session=texts(self.session),
            expose=texts(self.expose),
            dispositif=self.dispositif,
            votes=texts(self.votes),
            closing=texts(self.closing),
            preamble=texts(self.preamble),
            other=texts(self.other),
            warnings=warnings,
        )
