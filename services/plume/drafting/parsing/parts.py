"""What the act parser returns: the parts it recognised, and the warning when it found none."""

from __future__ import annotations

from dataclasses import dataclass, field

from plume.drafting.document import Article, DraftWarning, Sections

UNPARSED_ANSWER = "unparsed_answer"
UNPARSED_MESSAGE = (
    "Le texte n'a pas pu être découpé en parties : aucun article (« Article 1er », "
    "« Article 2 »…) n'a été reconnu. Il est conservé tel quel ; relisez-le et structurez-le "
    "en articles numérotés avant toute signature."
)


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
