"""The text of a file an agent joins to a synthèse (PDF, ODT, DOCX, plain text), read by
well-kept libraries: pypdf, python-docx, and an ODT's content.xml through defusedxml. Every
refusal is a French sentence naming the form's field « fichier », never a 500."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable
from pathlib import PurePath
from xml.etree.ElementTree import Element

import anyio
import docx
import pypdf
import structlog
from defusedxml import ElementTree
from pypdf.errors import PyPdfError
from starlette.datastructures import UploadFile

from plume.drafting.schemas import SOURCE_MAX
from plume.errors import InvalidRequest, PlumeError, invalid_field

logger = structlog.get_logger("plume.workspace")

FIELD = "fichier"
MAX_BYTES = 10 * 1024 * 1024
MAX_PAGES = 2_000
# What an archive (DOCX, ODT) may unpack to: a zip bomb stops here, a real document does not.
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
ACCEPT = ".pdf,.odt,.docx,.txt"

_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_PARAGRAPHS = {f"{{{_ODF_TEXT}}}p", f"{{{_ODF_TEXT}}}h"}
_SPACE, _TAB, _BREAK = (f"{{{_ODF_TEXT}}}{name}" for name in ("s", "tab", "line-break"))


async def read_upload(upload: UploadFile) -> str:
    """The text of an uploaded file, read up to the size cap (one byte more tells it is
    over), parsed in a worker thread."""
    data = await upload.read(MAX_BYTES + 1)
    return await anyio.to_thread.run_sync(extract_text, upload.filename or "", data)


def refused(message: str) -> InvalidRequest:
    return invalid_field(FIELD, message)


def extract_text(filename: str, data: bytes) -> str:
    """The file's text, paragraphs separated by a blank line (the synthèse cuts on them).
    Blocking (parsing a PDF takes a while): call it from a worker thread."""
    if len(data) > MAX_BYTES:
        raise refused(f"Le fichier dépasse {MAX_BYTES // (1024 * 1024)} Mo.")
    if not data:
        raise refused("Le fichier est vide.")
    reader = _READERS.get(PurePath(filename).suffix.lower())
    if reader is None:
        raise refused("Format non pris en charge : joignez un fichier PDF, ODT, DOCX ou TXT.")
    try:
        text = reader(data).replace("\x00", "").strip()
    except PlumeError:
        raise
    except Exception as error:
        # The parsers read untrusted bytes: what they did not foresee is a damaged file,
        # never a 500. The type alone is logged (never the content).
        logger.warning("upload_unreadable", reader=reader.__name__, error=type(error).__name__)
        raise refused("Ce fichier est illisible ou endommagé.") from None
    if not text:
        raise refused(
            "Le fichier ne contient pas de texte lisible (un document numérisé, par exemple) : "
            "joignez un fichier dont le texte peut être sélectionné, ou collez le texte."
        )
    if len(text) > SOURCE_MAX:
        raise refused(f"Le texte du fichier dépasse {SOURCE_MAX // (1024 * 1024)} Mo.")
    return text


def _pdf(data: bytes) -> str:
    if not data.startswith(b"%PDF-"):
        raise refused("Ce fichier n'est pas un PDF.")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise refused("Ce PDF est protégé par un mot de passe : joignez-le sans protection.")
        if len(reader.pages) > MAX_PAGES:
            raise refused(f"Ce PDF a plus de {MAX_PAGES} pages : joignez-le en plusieurs fois.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, RecursionError):
        raise refused("Ce PDF est illisible ou endommagé.") from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


def _archive(data: bytes, member: str, what: str) -> bytes:
    """One member of a DOCX or ODT (a zip), refused if the archive would unpack too far."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise refused(f"Ce fichier {what} est trop volumineux une fois décompressé.")
            return archive.read(member)
    except (
        zipfile.BadZipFile,
        KeyError,
        OSError,
        EOFError,
        zlib.error,
        NotImplementedError,  # a compression method zipfile does not know
        RuntimeError,  # an encrypted member
        ValueError,
    ):
        raise refused(f"Ce fichier n'est pas un document {what} lisible.") from None


def _docx(data: bytes) -> str:
    _archive(data, "word/document.xml", "DOCX")  # the checks, before python-docx reads it
    try:
        document = docx.Document(io.BytesIO(data))
    except (ValueError, KeyError, SyntaxError, zipfile.BadZipFile, zlib.error) as error:
        raise refused("Ce fichier n'est pas un document DOCX lisible.") from error
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text for cell in row.cells))
    return "\n\n".join(line.strip() for line in lines if line.strip())


def _odt(data: bytes) -> str:
    content = _archive(data, "content.xml", "ODT")
    try:
        root = ElementTree.fromstring(content)
    except Exception as error:  # defusedxml's refusals and expat's syntax errors alike
        raise refused("Ce fichier n'est pas un document ODT lisible.") from error
    paragraphs: list[str] = []
    _odt_paragraphs(root, paragraphs)
    return "\n\n".join(text.strip() for text in paragraphs if text.strip())


def _odt_paragraphs(element: Element, found: list[str]) -> None:
    if element.tag in _PARAGRAPHS:
        found.append(_odt_inline(element))
        return
    for child in element:
        _odt_paragraphs(child, found)


def _odt_inline(element: Element) -> str:
    """A paragraph's text with its spans, spaces (`text:s`), tabs and line breaks."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == _SPACE:
            count = child.get(f"{{{_ODF_TEXT}}}c", "1")
            parts.append(" " * (min(int(count), 100) if count.isdigit() else 1))
        elif child.tag == _TAB:
            parts.append("\t")
        elif child.tag == _BREAK:
            parts.append("\n")
        else:
            parts.append(_odt_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _txt(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise refused("Ce fichier texte n'est ni en UTF-8 ni en Windows-1252.")


_READERS: dict[str, Callable[[bytes], str]] = {
    ".pdf": _pdf,
    ".docx": _docx,
    ".odt": _odt,
    ".txt": _txt,
}
