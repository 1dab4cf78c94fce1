"""GET /v1/drafts/{id}/export: an approved act in md, docx and odt, parsed back."""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import docx
from httpx import AsyncClient
from odf import dc, meta, teletype  # type: ignore[import-untyped]
from odf import text as odf_text  # type: ignore[import-untyped]
from odf.opendocument import load as load_odt  # type: ignore[import-untyped]

from plume.drafting.document import AI_NOTICE
from tests.drafting.helpers import COMMUNE, EXAMPLES, REVIEWER, created, names_field, review
from tests.support.factories import Key
from tests.support.problems import assert_problem, invalid_fields


def docx_text(content: bytes) -> tuple[str, Any]:
    document = docx.Document(io.BytesIO(content))
    paragraphs = [p.text for p in document.paragraphs]
    for table in document.tables:
        paragraphs += [cell.text for row in table.rows for cell in row.cells]
    for section in document.sections:
        paragraphs += [p.text for p in section.header.paragraphs]
        paragraphs += [p.text for p in section.footer.paragraphs]
    return "\n".join(paragraphs), document.core_properties


def odt_text(content: bytes) -> tuple[str, str]:
    document = load_odt(io.BytesIO(content))
    body = "\n".join(
        teletype.extractText(element)
        for kind in (odf_text.H, odf_text.P)
        for element in document.getElementsByType(kind)
    )
    metadata = "\n".join(
        teletype.extractText(element)
        for kind in (dc.Description, meta.UserDefined, dc.Creator)
        for element in document.getElementsByType(kind)
    )
    return body, metadata


def compact(text: str) -> str:
    return " ".join(text.replace("’", "'").split())


async def test_an_approved_act_exports_to_md_docx_and_odt(client: AsyncClient, agent: Key) -> None:
    draft = await created(client, agent, EXAMPLES["arrete-travaux-pont"])
    # Before review: exported as a project, with the notice, without a reviewer.
    unreviewed = await client.get(
        f"/v1/drafts/{draft['id']}/export", headers=agent.headers, params={"format": "md"}
    )
    assert unreviewed.status_code == 200, unreviewed.text
    assert compact(AI_NOTICE) in compact(unreviewed.text)
    assert REVIEWER["name"] not in unreviewed.text

    assert (await review(client, agent, draft["id"])).status_code == 200
    media_types = {
        "md": "text/markdown",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "odt": "application/vnd.oasis.opendocument.text",
    }
    texts: dict[str, str] = {}
    for format, media_type in media_types.items():
        response = await client.get(
            f"/v1/drafts/{draft['id']}/export", headers=agent.headers, params={"format": format}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media_type)
        disposition = response.headers["content-disposition"]
        match = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"', disposition)
        assert match, disposition
        assert match[1].startswith("arrete-")
        assert match[1].endswith(f".{format}")
        if format == "md":
            text = response.content.decode("utf-8")
        elif format == "docx":
            text, properties = docx_text(response.content)
            assert compact(AI_NOTICE) in compact(properties.comments or "")
            assert REVIEWER["name"] in (properties.comments or "")
        else:
            text, metadata = odt_text(response.content)
            assert compact(AI_NOTICE) in compact(metadata)
            assert REVIEWER["name"] in metadata
        texts[format] = text
        flat = compact(text)
        assert compact(AI_NOTICE) in flat, (format, flat[:500])
        assert REVIEWER["name"] in flat, format
        assert "Article 1er" in flat, format
        assert COMMUNE in flat, format
        assert "tribunal administratif de Rouen" in flat, format
        assert "Nature ACTES" not in flat
    # Every format says the same act.
    parking = (
        "le stationnement est interdit route des Prés sur 50 mètres de part et d'autre du pont"
    )
    assert parking in EXAMPLES["arrete-travaux-pont"]["provisions"][1]
    for format in ("docx", "odt"):
        assert parking in compact(texts[format])

    default = await client.get(f"/v1/drafts/{draft['id']}/export", headers=agent.headers)
    assert default.status_code == 200
    assert default.headers["content-type"].startswith("text/markdown")
    for bad in ("pdf", "DOCX", ""):
        response = await client.get(
            f"/v1/drafts/{draft['id']}/export", headers=agent.headers, params={"format": bad}
        )
        assert names_field(invalid_fields(response), "format"), bad
    missing = await client.get(f"/v1/drafts/{uuid.uuid4()}/export", headers=agent.headers)
    assert_problem(missing, 404, "not_found")
