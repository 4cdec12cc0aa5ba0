"""Teams install and uninstall over real HTTP (the harness of ``test_teams.py``): the welcome card in
General, conversation references stored on install and message, deleted on removal and uninstall, on
SQLite and PostgreSQL."""

from __future__ import annotations

from bot.store import open_store
from bot.teams.common import WELCOME_TITLE
from handlers import Desk
from tests.connector_server import (
    TEAM_ID,
    ConnectorServer,
    TeamsHarness,
    _harness,
    assert_valid_card,
    fixture,
    submit_data,
    texts,
)

# ------------------------------------------------------------------------- install / uninstall


async def test_install_welcomes_and_stores_the_reference(teams: TeamsHarness):
    (sent,) = await teams.say("conversation_update_members_added.json")
    assert sent.conversation_id == TEAM_ID and sent.reply_to_id is None  # a new post in General
    card = sent.card
    assert_valid_card(card)
    assert card["body"][0]["text"] == WELCOME_TITLE
    shown = "\n".join(texts(card))
    assert "by @mentioning me" in shown and "/china-filing" in shown and "/china-sector" in shown
    assert [d["text"] for d in submit_data(card)] == ["/china-filing", "/china-sector", "/china-platform"]
    stored = await teams.store.get_conversation("teams", TEAM_ID)
    assert stored["serviceUrl"] == teams.connector.url and stored["conversation"]["id"] == TEAM_ID


async def test_person_joining_gets_no_welcome(teams: TeamsHarness):
    joined = fixture("conversation_update_members_added.json")["membersAdded"]
    joined[0]["id"] = "29:someone-else"
    assert await teams.say("conversation_update_members_added.json", membersAdded=joined) == []


async def test_removal_deletes_references(teams: TeamsHarness):
    await teams.say("conversation_update_members_added.json")
    await teams.say("channel_mention.json")
    assert await teams.store.get_conversation("teams", TEAM_ID) is not None
    assert await teams.say("conversation_update_members_removed.json") == []
    assert await teams.store.get_conversation("teams", TEAM_ID) is None


async def test_uninstall_deletes_references(teams: TeamsHarness):
    await teams.say("conversation_update_members_added.json")
    assert await teams.say("installation_update_remove.json") == []
    assert await teams.store.get_conversation("teams", TEAM_ID) is None


async def test_references_stored_and_deleted_on_postgresql(desk: Desk, connector: ConnectorServer, engine: str):
    from tests.test_store import fresh_pg_schema

    async with fresh_pg_schema() as url:
        pg = open_store(url)
        await pg.open()
        server = await _harness(desk, pg, connector, {"DATABASE_URL": url}, engine)
        try:
            harness = TeamsHarness(server, connector, pg)
            (sent,) = await harness.say("conversation_update_members_added.json")
            assert sent.card["body"][0]["text"] == WELCOME_TITLE
            await harness.say("personal_message.json")
            personal = fixture("personal_message.json")["conversation"]["id"]
            assert (await pg.get_conversation("teams", personal))["conversation"]["id"] == personal
            assert (await pg.get_conversation("teams", TEAM_ID)) is not None
            await harness.say("installation_update_remove.json")
            assert await pg.get_conversation("teams", TEAM_ID) is None
        finally:
            await server.close()
            await pg.close()
