"""The words of an act the parser recognises, as compiled patterns tried on each cleaned line."""

from __future__ import annotations

import re

_I = re.IGNORECASE

# --- Markdown clean-up -------------------------------------------------------------------------

FENCE = re.compile(r"^\s*(?:```|~~~)")
QUOTE = re.compile(r"^(?:>\s?)+")
BULLET = re.compile(r"^(?P<marker>[-*+•–—]|\d{1,2}[.)])\s+")
RULE = re.compile(r"^(?:-\s*){3,}$|^(?:\*\s*){3,}$")
BOLD_ONLY = re.compile(r"^\*\*[^*].*\*\*\s*[:.]?$")
BOLD_ARTICLE_LABEL = re.compile(r"^\*\*\s*art(?:icle|\.)\s*[^*]{1,25}?\*\*", _I)
# "[^<>]" rather than "[^>]": an unclosed "<b" then stops at the next "<", so a line of them
# is read once, not once per "<b" (quadratic).
HTML_TAG = re.compile(r"</?(?:sup|sub|b|strong|i|em|u|span|p|br)\b[^<>]*>", _I)
# Every run of spaces, tabs and other whitespace is one space in a cleaned line: the patterns
# below then never meet a long run (where "\s*:?\s*" backtracks quadratically).
SPACES = re.compile(r"\s+")

# --- Line classes (tried in this order: the earlier, more specific patterns win) ---------------

ARTICLE = re.compile(
    r"^art(?:icle|\.)\s*"
    r"(?P<num>premier|premi[eè]re|unique|\d{1,3}\s*(?:er|ᵉʳ)?|(?-i:[IVX]{1,5})"
    r"|un|deux|trois|quatre|cinq|six|sept|huit|neuf|dix)"
    r"(?P<sep>\s*[:.–—-]+\s*|\s*$|\s+)(?P<rest>.*)$",
    _I | re.S,
)
# "\s*+" (possessive) where two runs of spaces meet around an optional mark: one way to
# read them, not one per split of the run.
VISA_INTRO = re.compile(r"^(?:vu|visas?)\s*+:?\s*+$", _I)
VISA = re.compile(r"^vu\b\s*[,:]?\s*(?P<rest>.+)$", _I | re.S)
CONSIDERANT_INTRO = re.compile(r"^consid[ée]rants?\s*+:?\s*+$", _I)
CONSIDERANT = re.compile(r"^(?P<word>consid[ée]rant|attendu)\b\s*[,:]?\s*(?P<rest>.+)$", _I | re.S)
SIGNATURE = re.compile(
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
SIGNATORY = re.compile(
    r"^(?:pour\s+le\s+maire(?:\s+et\s+par\s+d[ée]l[ée]gation)?"
    r"|(?:le|la)\s+maire|l['’]adjointe?(?:\s+au\s+maire)?"
    r"|(?:le|la)\s+(?:premi[eè]re?\s+)?adjointe?(?:\s+au\s+maire)?"
    r"|(?:le|la)\s+pr[ée]sidente?|(?:le|la)\s+secr[ée]taire\s+de\s+s[ée]ance)"
    rf"(?:\s+(?:de\s+(?:la\s+commune\s+de\s+)?|d['’]){_CAPITALISED_NAME})?"
    r"(?:\s*,\s*[^,.;:]{2,60}|\s*,)?\s*$"
    r"|^sign[ée]\s*:|^[\[(]\s*signature",
    _I,
)
MENTION_ANYWHERE = re.compile(
    r"peut\s+faire\s+l['’]objet\s+d['’]un\s+recours"
    r"|voies?\s+et\s+d[ée]lais?\s+de\s+recours|d[ée]lais?\s+et\s+voies?\s+de\s+recours"
    r"|t[ée]l[ée]recours"
    r"|avec\s+l['’]assistance\s+d['’]un\s+syst[èe]me\s+d['’]intelligence\s+artificielle"
    r"|^(?:document|texte|projet)\b.{0,60}\bintelligence\s+artificielle",
    _I,
)
# "… peut être contesté devant le tribunal administratif de Rouen dans un délai de deux mois"
# is an appeal mention too, without the word "recours".
APPEAL_VERB = re.compile(r"\brecours\b|\bcontest|\bd[ée]f[ée]r[ée]|\battaqu", _I)
APPEAL_DETAIL = re.compile(r"tribunal\s+administratif|\b(?:deux|2)\s+mois\b", _I)
MENTION_START = re.compile(
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
NOTE = re.compile(r"^(?:mentions?|avertissement|note)\s*:", _I)
CLOSING_HEADING = re.compile(
    r"^(?:mentions?(?:\s+l[ée]gales|\s+obligatoires)?"
    r"|voies?\s+et\s+d[ée]lais?\s+de\s+recours|d[ée]lais?\s+et\s+voies?\s+de\s+recours|recours"
    r"|signatures?|publication|ampliation|notification|avertissement|transparence"
    r"|caract[èe]re\s+ex[ée]cutoire)\s*+:?\s*+$",
    _I,
)
VOTE_START = re.compile(
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
    r"|\bpour\s*+:?\s*+(?:\d+|_{2,}|…|\.{3})\s*+[,;–—-]?\s*+contre\b",
    _I,
)
DISPOSITIF = re.compile(
    r"^(?:le\s+maire\b.{0,120}?)?\barr[êe]te\s*+:?\s*+$"
    r"|(?-i:\bARR[ÊE]TE)\s*+:?\s*+$"
    r"|^(?:le\s+conseil\s+municipal\b.{0,160}?)?\bd[ée]cide\s*+:?\s*+$"
    r"|(?-i:\bD[ÉE]CIDE\b)"
    r"|apr[èe]s\s+en\s+avoir\s+d[ée]lib[ée]r[ée]"
    r"|^d[ée]lib[èe]re\s*+:?\s*+$",
    _I,
)
SESSION = re.compile(
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
EXPOSE_HEADING = re.compile(
    r"^(?:expos[ée](?:\s+des\s+motifs)?|rapport(?:\s+de\s+pr[ée]sentation)?|pr[ée]sentation)"
    r"\s*(?::\s*(?P<rest>.*))?$",
    _I | re.S,
)
EXPOSE_START = re.compile(
    r"^(?:(?:m\.|mme|monsieur|madame)\s+)?(?:le|la|l['’])\s*"
    r"(?:maire|rapporteure?|adjointe?|premi[eè]re?\s+adjointe?|pr[ée]sidente?)\b"
    r".{0,120}?\b(?:expose|pr[ée]sente|rappelle|informe)\b"
    r"|^(?:m\.|mme|monsieur|madame)\s+(?:le|la)\s+rapporteure?\b",
    _I | re.S,
)
OBJET = re.compile(r"^objet\s*:\s*(?P<rest>.+)$", _I | re.S)
OBJECT_LINE = re.compile(
    r"^(?:portant|relatif|relative|r[ée]glementant|fixant|concernant|instituant|prescrivant"
    r"|autorisant|interdisant)\b",
    _I,
)
# Act-type headers ("Arrêté du maire n° 2027-___", "Délibération du conseil municipal de La Haye")
# say what the document is, not what it is about: the object line after them is the title.
# "n° 2027-015", "n° 2027-___", or the offline composer's "n° [À COMPLÉTER]".
_ACT_NUMBER = r"(?:n[°o]|num[ée]ro)\s*(?:\[[^\]]*\]|\S*)"
GENERIC_HEADER = re.compile(
    r"^(?:arr[êeé]t[ée](?:\s+(?:du\s+maire|municipal|temporaire|permanent"
    rf"|{_ACT_NUMBER}|(?:de\s+la\s+commune\s+)?(?:de|d['’])\s*{_CAPITALISED_NAME}))*"
    rf"|d[ée]lib[ée]ration(?:\s+(?:du\s+conseil\s+municipal|{_ACT_NUMBER}"
    rf"|(?:de\s+la\s+commune\s+)?(?:de|d['’])\s*{_CAPITALISED_NAME}))*"
    r"|conseil\s+municipal(?:\s+(?:de|d['’])\s*.*)?)\s*+[.:,]?\s*+$"
    r"|^(?:extrait\b|r[ée]publique\s+fran[çc]aise|libert[ée]\s*[,.]?\s*[ée]galit[ée]"
    r"|d[ée]partement\b|commune\s+(?:de|d['’])|mairie\s+(?:de|d['’])|ville\s+(?:de|d['’])"
    r"|registre\b|proc[èe]s-verbal|(?:le|la)\s+maire\b|le\s+conseil\s+municipal\b)",
    _I,
)
# The head ends on a non-space (as it did with ".+?" on a stripped line): the colon is then
# looked for once per run of spaces, not from each of its positions.
HEADER_WITH_OBJECT = re.compile(r"^(?P<head>.*?\S)\s*+[:–—]\s+(?P<rest>.+)$", re.S)
CHATTER = re.compile(
    r"^(?:voici\b|n['’]h[ée]sitez|je\s+(?:reste|peux|vous|ne|suis)|j['’]esp[èe]re"
    r"|bien\s+s[ûu]r\b|certainement\b|avec\s+plaisir\b|remarques?\s*:)",
    _I,
)

NUMBER_WORDS = {
    "premier": 1, "premiere": 1, "première": 1, "un": 1, "deux": 2, "trois": 3, "quatre": 4,
    "cinq": 5, "six": 6, "sept": 7, "huit": 8, "neuf": 9, "dix": 10,
}  # fmt: skip
ROMAN = {"i": 1, "v": 5, "x": 10}
