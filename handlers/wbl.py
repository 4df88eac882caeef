"""Placeholder router; the feature fills it in."""

from __future__ import annotations

from aiogram import Router

router = Router(name="wbl")
