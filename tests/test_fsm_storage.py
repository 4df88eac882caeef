from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey

from storage.db import current_session, make_engine, make_sessionmaker
from storage.fsm import SQLStorage, forget_user


class Form(StatesGroup):
    name = State()


KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)


async def test_state_and_data_survive_a_new_storage(db_url):
    engine = make_engine(db_url)
    storage = SQLStorage(make_sessionmaker(engine))
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}
    await storage.set_state(KEY, Form.name)
    await storage.update_data(KEY, {"name": "Anna <b>", "years": 3})
    await engine.dispose()

    # A "restart": a new engine and storage read what the first one wrote.
    engine = make_engine(db_url)
    storage = SQLStorage(make_sessionmaker(engine))
    assert await storage.get_state(KEY) == "Form:name"
    assert await storage.get_data(KEY) == {"name": "Anna <b>", "years": 3}
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {"name": "Anna <b>", "years": 3}
    await engine.dispose()


async def test_writes_join_the_update_session_and_roll_back_with_it(db_url):
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    storage = SQLStorage(sessionmaker)
    async with sessionmaker() as session:
        token = current_session.set(session)
        try:
            await storage.set_state(KEY, Form.name)
            assert await storage.get_state(KEY) == "Form:name"
            await session.rollback()
        finally:
            current_session.reset(token)
    assert await storage.get_state(KEY) is None
    await engine.dispose()


async def test_forget_user(db_url):
    engine = make_engine(db_url)
    sessionmaker = make_sessionmaker(engine)
    storage = SQLStorage(sessionmaker)
    other = StorageKey(bot_id=1, chat_id=7, user_id=7)
    await storage.set_state(KEY, Form.name)
    await storage.set_state(other, Form.name)
    async with sessionmaker() as session:
        await forget_user(session, 42)
        await session.commit()
    assert await storage.get_state(KEY) is None
    assert await storage.get_state(other) == "Form:name"
    await engine.dispose()
