"""The operator console (placeholder until the console slice)."""

from __future__ import annotations

from fastapi import APIRouter

from sealcard.web.services import AppServices


def build_console(services: AppServices) -> APIRouter:
    return APIRouter()
