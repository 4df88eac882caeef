"""The routers, in the order the dispatcher tries them: specific first, fallbacks last."""

from __future__ import annotations

from aiogram import F, Router

from bot.consent_gate import ConsentGate


def _detached(router: Router) -> Router:
    """aiogram attaches a router to one parent for life; a second app in the same process
    (the test suite builds many) takes the module routers over from the first."""
    parent = router.parent_router
    if parent is not None:
        parent.sub_routers.remove(router)
        router._parent_router = None
    return router


def routers() -> list[Router]:
    from handlers import common, enrol, errors, mentor, privacy, quiz, settings, trainer, wbl

    private = Router(name="private")
    # The bot talks one to one; in groups it stays silent rather than leak anything.
    private.message.filter(F.chat.type == "private")
    # A learner who withdrew consent reaches only the ways back and their privacy rights.
    gate = ConsentGate()
    for observer in (private.message, private.callback_query, private.poll_answer):
        observer.outer_middleware(gate)
    private.include_routers(
        *(
            _detached(m.router)
            for m in (enrol, privacy, trainer, quiz, wbl, mentor, settings, common)
        ),
        _detached(common.fallback_router),
    )
    return [_detached(errors.router), private]
