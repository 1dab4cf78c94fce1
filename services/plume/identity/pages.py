"""The few HTML pages a browser sees during sign-in, in French: a refusal says whom to ask."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="fr">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — Plume</title></head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""


def page(title: str, *paragraphs: str) -> str:
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return _PAGE.format(title=escape(title), body=body)


def sign_in_off() -> str:
    return page(
        "Connexion indisponible",
        "La connexion des agents par ProConnect n'est pas activée sur ce service Plume.",
        "Adressez-vous à l'administrateur de votre mairie, ou à l'opérateur du service.",
    )


def refused(reason: str, organization: str | None) -> str:
    whom = (
        f"Demandez à l'administrateur de Plume de votre mairie ({organization}) de vous inviter "
        "avec l'adresse électronique que vous utilisez avec ProConnect."
        if organization
        else "Demandez à l'administrateur de Plume de votre mairie de vous inviter avec "
        "l'adresse électronique que vous utilisez avec ProConnect."
    )
    return page(
        "Accès refusé",
        f"Vous vous êtes bien identifié(e) auprès de ProConnect, mais Plume ne peut pas vous "
        f"ouvrir de session : {reason}",
        whom,
    )


def failed() -> str:
    return page(
        "Connexion interrompue",
        "La connexion n'a pas pu aboutir (lien expiré, déjà utilisé, ou réponse du fournisseur "
        "d'identité refusée).",
        "Recommencez depuis la page d'accueil de Plume. Si l'erreur persiste, adressez-vous à "
        "l'administrateur de votre mairie.",
    )


def unavailable() -> str:
    return page(
        "Connexion indisponible",
        "Le fournisseur d'identité (ProConnect) ne répond pas pour le moment.",
        "Réessayez dans quelques minutes.",
    )
