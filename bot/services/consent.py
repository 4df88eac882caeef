"""Consent: asked after the language, before anything personal is kept; versioned."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from content.loader import Content
from storage.models import ConsentAnswer, ConsentEvent, User


def current_version(content: Content, language: str) -> int:
    notice, _ = content.privacy_for(language)
    return notice.version


def has_valid_consent(user: User, content: Content) -> bool:
    """Consent counts for the notice version the person saw, in the language they saw it;
    a new version of that text means asking again."""
    if user.consent_version is None or user.consent_language is None:
        return False
    return user.consent_version >= current_version(content, user.consent_language)


async def record(
    session: AsyncSession,
    user: User,
    answer: ConsentAnswer,
    *,
    language: str,
    content: Content,
    now: datetime,
) -> ConsentEvent:
    version = current_version(content, language)
    event = ConsentEvent(user_id=user.id, answer=answer, version=version, language=language, at=now)
    session.add(event)
    if answer is ConsentAnswer.granted:
        user.consent_version, user.consent_language = version, language
    else:
        user.consent_version, user.consent_language = None, None
    await session.flush()
    return event
