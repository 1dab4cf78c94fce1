from httpx import AsyncClient

from tests.support.factories import Factory


async def test_commune_key_sees_its_own_organization(client: AsyncClient, factory: Factory) -> None:
    commune = await factory.commune("La Haye")
    key = await factory.key(commune)
    response = await client.get("/v1/organization", headers=key.headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(commune.id)
