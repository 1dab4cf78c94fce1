"""One error hierarchy, rendered as RFC 9457 problem details with a stable `code`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

PROBLEM_JSON = "application/problem+json"
# Where a problem's `type` points: Plume's own page for its code (GET /problems/{code}), at
# PLUME_PUBLIC_URL (by default the local server `plume serve` listens on).
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
PROBLEMS_PATH = "/problems/"


class _ProblemTypes:
    base = DEFAULT_PUBLIC_URL.rstrip("/") + PROBLEMS_PATH


def set_public_url(public_url: str) -> None:
    """The address clients reach Plume at: problem types point at its /problems/ pages
    (create_app sets it from PLUME_PUBLIC_URL; one per process)."""
    _ProblemTypes.base = public_url.rstrip("/") + PROBLEMS_PATH


def problem_type(code: str) -> str:
    """The URI of a problem code's documentation page."""
    return _ProblemTypes.base + code


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class PlumeError(Exception):
    """Base of every error a client may see. `detail` is French, for a person."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Erreur interne"
    default_detail: ClassVar[str] = (
        "Une erreur inattendue s'est produite. Si elle persiste, transmettez l'identifiant "
        "de la requête à l'opérateur."
    )
    # What a person can do about it, for the code's documentation page (French).
    advice: ClassVar[str] = (
        "Réessayez plus tard. Si l'erreur persiste, transmettez à Seine-Maritime Numérique "
        "l'identifiant de la requête (request_id, ou l'en-tête X-Request-ID) : le détail de "
        "l'erreur figure dans les journaux du serveur sous cet identifiant."
    )

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = errors
        self.headers = headers or {}
        super().__init__(self.detail)

    def problem(self, request_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.code),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "request_id": request_id,
        }
        if self.errors is not None:
            body["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return body


class InternalError(PlumeError):
    pass


class Unauthenticated(PlumeError):
    status = 401
    code = "unauthenticated"
    title = "Authentification requise"
    advice = (
        "Envoyez l'en-tête « Authorization: Bearer plm_… » avec une clé d'API active. Une "
        "clé révoquée ou expirée ne sert plus : demandez-en une nouvelle à "
        "l'administrateur de votre organisation."
    )
    default_detail = (
        "Clé d'API absente, inconnue, mal formée, expirée ou révoquée. Envoyez l'en-tête "
        "« Authorization: Bearer plm_… » avec une clé valide."
    )

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="plume"'})


class Forbidden(PlumeError):
    status = 403
    code = "forbidden"
    title = "Action non autorisée"
    advice = (
        "Le rôle de la clé (agent, tenant_admin, operator_admin) ne permet pas cette "
        "action : utilisez une clé d'un rôle suffisant, ou demandez à l'administrateur de "
        "votre organisation de faire l'action."
    )
    default_detail = "Le rôle de votre clé d'API ne permet pas cette action."


class OrganizationSuspended(PlumeError):
    status = 403
    code = "organization_suspended"
    title = "Organisation suspendue"
    advice = (
        "Aucune requête n'est acceptée tant que l'organisation, ou une organisation "
        "au-dessus d'elle, est suspendue. Contactez Seine-Maritime Numérique."
    )
    default_detail = (
        "L'organisation de cette clé est suspendue. Contactez Seine-Maritime Numérique "
        "pour la réactiver."
    )


class KindDisabled(PlumeError):
    status = 403
    code = "kind_disabled"
    title = "Type de document désactivé"
    advice = (
        "La politique de votre organisation (allowed_kinds) n'autorise pas ce type de "
        "document ou la conversation (chat). Demandez à l'opérateur de l'autoriser."
    )
    default_detail = "Ce type de document est désactivé par la politique de votre organisation."


class HostingNotAllowed(PlumeError):
    status = 403
    code = "hosting_not_allowed"
    title = "Hébergement non autorisé"
    advice = (
        "Le groupe de modèles demandé n'a aucun déploiement hébergé là où la politique de "
        "votre organisation l'autorise (allowed_hosting). Choisissez un autre groupe (GET "
        "/v1/models) ou demandez à l'opérateur d'élargir la politique."
    )
    default_detail = (
        "Aucun fournisseur autorisé par la politique d'hébergement de votre organisation "
        "ne peut traiter cette demande."
    )


class NotFound(PlumeError):
    status = 404
    code = "not_found"
    title = "Ressource introuvable"
    advice = (
        "Vérifiez l'adresse et l'identifiant. Une ressource d'une autre organisation "
        "répond de la même façon qu'une ressource qui n'existe pas."
    )
    default_detail = "La ressource demandée n'existe pas."


class MethodNotAllowed(PlumeError):
    status = 405
    code = "method_not_allowed"
    title = "Méthode non autorisée"
    advice = "L'en-tête Allow de la réponse liste les méthodes acceptées à cette adresse."
    default_detail = "Cette méthode HTTP n'est pas acceptée sur cette adresse."


class Conflict(PlumeError):
    status = 409
    code = "conflict"
    title = "Conflit"
    advice = (
        "La ressource a changé d'état (un brouillon déjà validé, un identifiant déjà "
        "pris) : relisez-la avant de recommencer."
    )
    default_detail = "La demande est en conflit avec l'état actuel de la ressource."


class PayloadTooLarge(PlumeError):
    status = 413
    code = "payload_too_large"
    title = "Requête trop volumineuse"
    advice = (
        "Réduisez la taille du corps de la requête : 1 Mio au plus, 8 Mio pour une "
        "synthèse (POST /v1/drafts avec « kind » à « synthese »)."
    )
    default_detail = "Le corps de la requête dépasse la taille autorisée."


class InvalidRequest(PlumeError):
    status = 422
    code = "invalid_request"
    title = "Requête invalide"
    advice = (
        "Corrigez les champs listés dans « errors » (chacun avec son message) puis "
        "renvoyez la requête."
    )
    default_detail = "La requête contient des erreurs ; voir la liste des champs en cause."


class ContentRefused(PlumeError):
    status = 422
    code = "content_refused"
    title = "Contenu refusé par le fournisseur"
    advice = (
        "Le fournisseur d'IA a refusé ce contenu selon sa propre politique : reformulez la demande."
    )
    default_detail = "Le fournisseur d'IA a refusé de traiter ce contenu."


class PersonalDataRefused(PlumeError):
    status = 422
    code = "personal_data_refused"
    title = "Données personnelles refusées"
    advice = (
        "La politique de votre organisation interdit d'envoyer aux fournisseurs d'IA des "
        "données personnelles d'administrés (noms, adresses, téléphones, courriels, NIR, IBAN, "
        "dates de naissance, plaques…) : retirez-les des champs listés dans « errors », ou "
        "remplacez-les par une mention générique (« le demandeur »), puis renvoyez la "
        "requête. Rien n'a été facturé."
    )
    default_detail = (
        "La requête contient des données personnelles, que la politique de votre organisation "
        "interdit d'envoyer à un fournisseur d'IA ; rien n'a été facturé."
    )

    def __init__(self, fields: list[str]) -> None:
        named = ", ".join(f"« {field} »" for field in fields)
        super().__init__(
            "La requête contient des données personnelles d'administrés, que la politique de "
            "votre organisation interdit d'envoyer à un fournisseur d'IA (champs en cause : "
            f"{named}) ; rien n'a été facturé.",
            errors=[
                FieldError(
                    field,
                    "Contient des données personnelles (nom, adresse, téléphone, courriel, "
                    "numéro ou date de naissance d'un administré).",
                )
                for field in fields
            ],
        )


class IdempotencyInProgress(PlumeError):
    status = 409
    code = "idempotency_in_progress"
    title = "Requête déjà en cours"
    advice = (
        "Une requête avec la même clé d'idempotence est encore en cours : réessayez après "
        "le délai de l'en-tête Retry-After pour obtenir sa réponse."
    )
    default_detail = (
        "Une requête portant la même clé d'idempotence (Idempotency-Key) est encore en cours "
        "de traitement ; réessayez dans quelques secondes pour obtenir sa réponse."
    )

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "2"})


class IdempotencyMismatch(PlumeError):
    status = 422
    code = "idempotency_mismatch"
    title = "Clé d'idempotence déjà utilisée"
    advice = "Utilisez une nouvelle clé d'idempotence (Idempotency-Key) pour une nouvelle requête."
    default_detail = (
        "Cette clé d'idempotence (Idempotency-Key) a déjà servi pour une requête différente "
        "au cours des dernières 24 heures ; utilisez une nouvelle clé pour une nouvelle requête."
    )

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, errors=[FieldError("Idempotency-Key", self.default_detail)])


class QuotaExceeded(PlumeError):
    status = 429
    code = "quota_exceeded"
    title = "Quota atteint"
    default_detail = (
        "Cette requête dépasserait un quota journalier ou mensuel de votre organisation, ou "
        "d'une organisation au-dessus d'elle."
    )
    advice = (
        "Un quota journalier ou mensuel serait dépassé : attendez sa remise à zéro "
        "(en-tête Retry-After, en secondes) ou demandez un quota plus élevé."
    )

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(retry_after, 1))})


class RateLimited(QuotaExceeded):
    code = "rate_limited"
    title = "Trop de requêtes"
    default_detail = "Cette requête dépasserait un quota par minute."
    advice = (
        "Un quota par minute serait dépassé : réessayez après le délai de l'en-tête "
        "Retry-After (en secondes)."
    )


class ProviderUnavailable(PlumeError):
    status = 502
    code = "provider_unavailable"
    title = "Fournisseur d'IA indisponible"
    advice = (
        "Aucun fournisseur d'IA autorisé n'a répondu ; rien n'a été facturé. Réessayez "
        "dans quelques minutes."
    )
    default_detail = (
        "Aucun des fournisseurs d'IA autorisés pour votre organisation n'a pu répondre. "
        "Rien ne vous a été facturé ; réessayez dans quelques minutes."
    )


class ServiceUnavailable(PlumeError):
    status = 503
    code = "unavailable"
    title = "Service momentanément indisponible"
    # The database may fail after a provider answered and its call was settled (a failover,
    # docs/operations.md): this answer cannot promise that nothing was charged.
    advice = (
        "La base de données ne répond pas. Une demande adressée à un fournisseur d'IA a pu "
        "être enregistrée et facturée malgré cette erreur : réessayez après le délai de "
        "l'en-tête Retry-After avec le même en-tête Idempotency-Key, qui ne la facture pas "
        "deux fois."
    )
    default_detail = (
        "La base de données ne répond pas ; une demande déjà transmise à un fournisseur d'IA "
        "a pu être enregistrée. Réessayez dans quelques instants avec le même "
        "Idempotency-Key pour ne pas être facturé deux fois."
    )

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


def problem_classes() -> dict[str, type[PlumeError]]:
    """Every error a client may see, by code (the base class is `internal_error`)."""
    found: dict[str, type[PlumeError]] = {}
    pending: list[type[PlumeError]] = [PlumeError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return dict(sorted(found.items()))


# Routes that speak OpenAI's error shape rather than problem details.
OPENAI_COMPATIBLE_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})

_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(error: PlumeError) -> dict[str, Any]:
    """The same error in OpenAI's shape, for the OpenAI-compatible routes."""
    body: dict[str, Any] = {
        "message": error.detail,
        "type": _OPENAI_TYPES.get(error.status, "api_error"),
        "code": error.code,
        "param": error.errors[0].field if error.errors else None,
    }
    return {"error": body}


def render_error(
    error: PlumeError, request_id: str | None, path: str
) -> tuple[dict[str, Any], str]:
    """The body and media type of an error answer on `path`."""
    if path in OPENAI_COMPATIBLE_PATHS:
        return openai_error(error), "application/json"
    return error.problem(request_id), PROBLEM_JSON


def invalid_field(field: str, message: str) -> InvalidRequest:
    """A 422 naming one field, for checks that only the service layer can make."""
    return InvalidRequest(
        f"Le champ « {field} » est invalide : {message}",
        errors=[FieldError(field=field, message=message)],
    )
