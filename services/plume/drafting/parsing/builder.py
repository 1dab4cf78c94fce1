"""The state machine that files each cleaned line of an act into its part (visa, article…)."""

from __future__ import annotations

import re
from enum import Enum, auto

from plume.drafting.document import Article, DraftWarning
from plume.drafting.parsing.markdown import Line
from plume.drafting.parsing.parts import UNPARSED_ANSWER, UNPARSED_MESSAGE, ActParts
from plume.drafting.parsing.vocabulary import (
    APPEAL_DETAIL,
    APPEAL_VERB,
    ARTICLE,
    CHATTER,
    CLOSING_HEADING,
    CONSIDERANT,
    CONSIDERANT_INTRO,
    DISPOSITIF,
    EXPOSE_HEADING,
    EXPOSE_START,
    GENERIC_HEADER,
    HEADER_WITH_OBJECT,
    MENTION_ANYWHERE,
    MENTION_START,
    NOTE,
    NUMBER_WORDS,
    OBJECT_LINE,
    OBJET,
    ROMAN,
    SESSION,
    SIGNATORY,
    SIGNATURE,
    VISA,
    VISA_INTRO,
    VOTE_ANYWHERE,
    VOTE_START,
)

# Past this length a paragraph after the signature is a note, not a signatory line.
_SIGNATURE_LINE_MAX = 150


class _Block:
    """A part's text, line by line; joined when read (adding each line to a growing string
    copied it all again: an article of 100,000 lines took seconds)."""

    def __init__(self, text: str = "") -> None:
        self._pieces = [text] if text else []

    def add(self, piece: str, sep: str) -> None:
        if self._pieces:
            self._pieces += (sep, piece)
        elif piece:
            self._pieces.append(piece)

    @property
    def text(self) -> str:
        return "".join(self._pieces)


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


def _normalise_number(raw: str) -> str:
    label = re.sub(r"\s+", "", raw).lower().replace("ᵉʳ", "er")
    if label == "unique":
        return label
    if label.endswith("er") and label[:-2].isdigit():
        label = label[:-2]
    if label.isdigit():
        number = int(label)
    elif label in NUMBER_WORDS:
        number = NUMBER_WORDS[label]
    elif label and all(char in ROMAN for char in label):
        number = _roman(label)
    else:
        return raw.strip()
    return "1er" if number == 1 else str(number)


def _roman(token: str) -> int:
    total = 0
    for i, char in enumerate(token):
        value = ROMAN[char]
        following = ROMAN[token[i + 1]] if i + 1 < len(token) else 0
        total += -value if value < following else value
    return total


def _title_text(text: str) -> str:
    return text.strip().rstrip(":,;").strip()


class Builder:
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

    def classify(self, line: Line) -> tuple[_Class, re.Match[str] | None]:
        if line.rule:
            return _Class.RULE, None
        text = line.text
        if m := ARTICLE.match(text):
            explicit = line.heading or line.bold_article_label
            if explicit or m.group("sep").strip() or not m.group("rest"):
                return _Class.ARTICLE, m
        if VISA_INTRO.match(text):
            return _Class.VISA_INTRO, None
        if m := VISA.match(text):
            return _Class.VISA, m
        if CONSIDERANT_INTRO.match(text):
            return _Class.CONSIDERANT_INTRO, None
        if m := CONSIDERANT.match(text):
            return _Class.CONSIDERANT, m
        if SIGNATURE.match(text):
            return _Class.SIGNATURE, None
        if self.state in _AFTER_DISPOSITIF and SIGNATORY.match(text):
            return _Class.SIGNATORY, None
        if CLOSING_HEADING.match(text):
            return _Class.CLOSING_HEADING, None
        if MENTION_ANYWHERE.search(text) or MENTION_START.match(text):
            return _Class.MENTION, None
        if APPEAL_VERB.search(text) and APPEAL_DETAIL.search(text):
            return _Class.MENTION, None
        if NOTE.match(text):
            return (_Class.MENTION if self.state in _AFTER_DISPOSITIF else _Class.TEXT), None
        if CHATTER.match(text):
            return _Class.CHATTER, None
        if self.deliberation:
            if VOTE_START.match(text):
                return _Class.VOTE, None
            if DISPOSITIF.search(text):
                # "…, à l'unanimité, DÉCIDE" after the articles is the vote line.
                if self.state is _State.ARTICLES and VOTE_ANYWHERE.search(text):
                    return _Class.VOTE, None
                return _Class.DISPOSITIF, None
            if SESSION.search(text):
                return _Class.SESSION, None
            if m := EXPOSE_HEADING.match(text):
                return _Class.EXPOSE_HEADING, m
            if EXPOSE_START.match(text):
                return _Class.EXPOSE, None
        elif DISPOSITIF.search(text):
            return _Class.DISPOSITIF, None
        if m := OBJET.match(text):
            return _Class.OBJET, m
        return _Class.TEXT, None

    # -- state machine --

    def feed(self, line: Line) -> None:
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

    def _text(self, line: Line) -> None:
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

    def _header_text(self, line: Line) -> None:
        text = _title_text(line.text)
        if line.heading:
            # "Délibération n° 2027-015 : Tarifs de la cantine" carries its object after the colon.
            split = HEADER_WITH_OBJECT.match(text)
            if split and GENERIC_HEADER.match(split.group("head")):
                text = split.group("rest")
            self.headings.append((text, bool(GENERIC_HEADER.match(text))))
            self.current = None
        elif OBJECT_LINE.match(text):
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
