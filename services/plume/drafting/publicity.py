"""How a drafted act becomes exécutoire: its publicity (CGCT L. 2131-1, as reformed in 2022),
its transmission to the préfecture (L. 2131-2) and the certificate that records both.

Individual decisions are notified to the person they concern; every other act is published in
the organisation's mode: electronically by default, by affichage or on paper only where a
commune under 3,500 inhabitants chose it. The pre-2022 « publié et affiché » is never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plume.drafting.legal_bases import Matter, is_individual, transmission_due

TO_COMPLETE = "[À COMPLÉTER]"

# What follows « publié » / « publiée », by the organisation's mode.
_PUBLICATION: dict[str, str] = {
    "electronique": "sous forme électronique sur le site internet de la commune",
    "affichage": "par affichage en mairie",
    "papier": "sur papier, à la disposition du public en mairie",
}


@dataclass(frozen=True, slots=True)
class ActLife:
    """What the act's closing says about its entry into force."""

    kind: str
    individual: bool
    publication_mode: str
    transmission: bool | None

    @property
    def _feminine(self) -> bool:
        return self.kind == "deliberation"

    def publicity(self) -> str:
        """« notifié au bénéficiaire » or « publié sous forme électronique … »."""
        e = "e" if self._feminine else ""
        if self.individual:
            return f"notifié{e} au bénéficiaire"
        mode = _PUBLICATION.get(self.publication_mode, _PUBLICATION["electronique"])
        return f"publié{e} {mode}"

    def transmission_sentence(self) -> str:
        act = "La présente délibération" if self._feminine else "Le présent arrêté"
        e = "e" if self._feminine else ""
        if self.transmission is True:
            return (
                f"{act} est transmis{e} au représentant de l'État dans le département "
                "(CGCT, art. L. 2131-2)."
            )
        if self.transmission is False:
            return (
                f"{act} n'est pas soumis{e} à l'obligation de transmission au représentant de "
                "l'État (CGCT, art. L. 2131-2)."
            )
        return (
            f"Transmission au représentant de l'État (CGCT, art. L. 2131-2) : {TO_COMPLETE} "
            "(à vérifier selon la nature de l'acte)."
        )

    def certificate(self, signer: str) -> str:
        """The « certifié exécutoire » block, its dates to fill in once they are known."""
        steps = []
        if self.transmission is not False:
            steps.append(f"transmission au représentant de l'État le {TO_COMPLETE}")
        if self.individual:
            steps.append(f"notification au bénéficiaire le {TO_COMPLETE}")
        else:
            steps.append(f"publication le {TO_COMPLETE}")
        return (
            f"Certifié exécutoire par {signer}, compte tenu de sa "
            + " et de sa ".join(steps)
            + " (CGCT, art. L. 2131-1)."
        )


def act_life(kind: str, matters: Iterable[Matter], identity: Mapping[str, Any]) -> ActLife:
    found = list(matters)
    return ActLife(
        kind=kind,
        individual=kind == "arrete" and is_individual(found),
        publication_mode=str(identity.get("publication_mode") or "electronique"),
        transmission=transmission_due(kind, found),
    )
