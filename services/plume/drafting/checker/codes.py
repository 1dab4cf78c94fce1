"""The checker's stable warning codes and the legal reference each one rests on."""

from __future__ import annotations

from plume.drafting.document import DraftWarning

# The form of an act (checker.form).
MISSING_VISAS = "missing_visas"
VISAS_WITHOUT_CGCT = "visas_without_cgct"
MISSING_CONSIDERANTS = "missing_considerants"
MISSING_ARTICLES = "missing_articles"
ARTICLES_NOT_NUMBERED = "articles_not_numbered"
MISSING_EXECUTION_ARTICLE = "missing_execution_article"
MISSING_PUBLICATION_MENTION = "missing_publication_mention"
MISSING_SESSION = "missing_session"
MISSING_VOTE = "missing_vote"
MISSING_SIGNATURE = "missing_signature"
MISSING_APPEAL_MENTION = "missing_appeal_mention"
APPEAL_MENTION_WRONG_TRIBUNAL = "appeal_mention_wrong_tribunal"

# The séance of a délibération (checker.seance).
MISSING_SESSION_COUNTS = "missing_session_counts"
CONVOCATION_TOO_LATE = "convocation_too_late"
MISSING_SESSION_SECRETARY = "missing_session_secretary"
MISSING_VOTE_MODE = "missing_vote_mode"
# The act's life: registre, publicity, transmission (checker.life).
MISSING_ACT_NUMBER = "missing_act_number"
PUBLICITY_MODE = "publicity_mode"
TRANSMISSION_REQUIRED = "transmission_required"
MISSING_EXECUTORY_MENTION = "missing_executory_mention"
# The visas (checker.visas).
DUPLICATE_VISA = "duplicate_visa"
VISA_ORDER = "visa_order"
LEGAL_BASIS_SUSPECT = "legal_basis_suspect"
# The wording (checker.wording).
OPEN_ENDED_MEASURE = "open_ended_measure"
BROKEN_TEXT = "broken_text"
PERSONAL_DATA_IN_ACT = "personal_data_in_act"
MIXED_ARTICLE_FORM = "mixed_article_form"
OBSOLETE_TITLE = "obsolete_title"
# Matters that need the agent's judgement or outside facts (checker.questions).
EMPLOYMENT_MENTIONS = "employment_mentions"
COUNCILLOR_INTEREST = "councillor_interest"
SUBSIDY_AGREEMENT = "subsidy_agreement"
COURRIER_INSTRUCTION_LEFT = "courrier_instruction_left"
LENGTH_OFF_TARGET = "length_off_target"
ACTES_LOW_CONFIDENCE = "actes_low_confidence"
# Matters where a draft can lose money or rest on the wrong authority (checker.matters).
CANTEEN_TRANCHES = "canteen_tranches"
REPUBLICAN_COMMITMENT = "republican_commitment"
AUTHORITY_COMPETENCE = "authority_competence"
# Letters (checker.letters).
SALUTATION_MISMATCH = "salutation_mismatch"

# Every code check_act can return, in the order it reports them (the order of an act).
FORM_CODES: tuple[str, ...] = (
    MISSING_SESSION,
    MISSING_VISAS,
    VISAS_WITHOUT_CGCT,
    MISSING_CONSIDERANTS,
    MISSING_ARTICLES,
    ARTICLES_NOT_NUMBERED,
    MISSING_EXECUTION_ARTICLE,
    MISSING_PUBLICATION_MENTION,
    MISSING_VOTE,
    MISSING_SIGNATURE,
    MISSING_APPEAL_MENTION,
    APPEAL_MENTION_WRONG_TRIBUNAL,
)

# Every code check_legality can return, in the order it reports them.
LEGAL_CODES: tuple[str, ...] = (
    MISSING_ACT_NUMBER,
    MISSING_SESSION_COUNTS,
    CONVOCATION_TOO_LATE,
    MISSING_SESSION_SECRETARY,
    MISSING_VOTE_MODE,
    DUPLICATE_VISA,
    VISA_ORDER,
    LEGAL_BASIS_SUSPECT,
    BROKEN_TEXT,
    PERSONAL_DATA_IN_ACT,
    MIXED_ARTICLE_FORM,
    OPEN_ENDED_MEASURE,
    EMPLOYMENT_MENTIONS,
    COUNCILLOR_INTEREST,
    SUBSIDY_AGREEMENT,
    REPUBLICAN_COMMITMENT,
    CANTEEN_TRANCHES,
    AUTHORITY_COMPETENCE,
    PUBLICITY_MODE,
    TRANSMISSION_REQUIRED,
    MISSING_EXECUTORY_MENTION,
    OBSOLETE_TITLE,
    COURRIER_INSTRUCTION_LEFT,
    SALUTATION_MISMATCH,
    LENGTH_OFF_TARGET,
    ACTES_LOW_CONFIDENCE,
)

# Where a code has a legal reference, the warning names it (« CGCT, art. L. 2121-15 »).
SOURCES: dict[str, str] = {
    MISSING_SESSION: "CGCT, art. L. 2121-10",
    VISAS_WITHOUT_CGCT: "CGCT, art. L. 2121-29 (délibérations), L. 2212-2 (police du maire)",
    MISSING_PUBLICATION_MENTION: "CGCT, art. L. 2131-1",
    MISSING_VOTE: "CGCT, art. L. 2121-20",
    MISSING_SIGNATURE: "CRPA, art. L. 212-1",
    MISSING_APPEAL_MENTION: "CJA, art. R. 421-5",
    APPEAL_MENTION_WRONG_TRIBUNAL: "CJA, art. R. 312-1",
    MISSING_SESSION_COUNTS: "CGCT, art. L. 2121-17 et L. 2121-20",
    CONVOCATION_TOO_LATE: "CGCT, art. L. 2121-11 et L. 2121-12",
    MISSING_SESSION_SECRETARY: "CGCT, art. L. 2121-15 et L. 2121-23",
    MISSING_VOTE_MODE: "CGCT, art. L. 2121-21",
    MISSING_ACT_NUMBER: "CGCT, art. R. 2121-9 (délibérations), R. 2122-7 (arrêtés)",
    PUBLICITY_MODE: "CGCT, art. L. 2131-1",
    TRANSMISSION_REQUIRED: "CGCT, art. L. 2131-2",
    MISSING_EXECUTORY_MENTION: "CGCT, art. L. 2131-1",
    DUPLICATE_VISA: "Guide de légistique, visas",
    VISA_ORDER: "Guide de légistique, visas",
    OPEN_ENDED_MEASURE: "CE, 19 mai 1933, Benjamin (proportionnalité des mesures de police)",
    PERSONAL_DATA_IN_ACT: "RGPD, art. 5-1-c ; CRPA, art. L. 312-1-2",
    MIXED_ARTICLE_FORM: "Guide de légistique, rédaction du dispositif",
    EMPLOYMENT_MENTIONS: "CGFP, art. L. 313-1 et L. 332-8",
    COUNCILLOR_INTEREST: "CGCT, art. L. 2131-11 ; Code pénal, art. 432-12",
    SUBSIDY_AGREEMENT: "Loi n° 2000-321 du 12 avril 2000, art. 10 ; décret n° 2001-495",
    OBSOLETE_TITLE: "CGCT, art. L. 2122-19-1",
    REPUBLICAN_COMMITMENT: "Loi n° 2000-321 du 12 avril 2000, art. 10-1 ; décret n° 2021-1947",
    AUTHORITY_COMPETENCE: "La règle de compétence de la matière (voirie, installations classées…)",
    CANTEEN_TRANCHES: (
        "Tarification sociale des cantines (« cantine à 1 € ») : conditions de l'aide de l'État"
    ),
    LEGAL_BASIS_SUSPECT: "Le code qui régit la matière (CGPPP, Code rural, Code de la route…)",
}


def warning(code: str, message: str, source: str | None = None) -> DraftWarning:
    """A warning with its code's usual source unless a more precise one is given."""
    return DraftWarning(code=code, message=message, source=source or SOURCES.get(code))
