"""A hook importing a LiteLLM module hookjail does not provide (its database)."""

from __future__ import annotations

from typing import Any

from litellm.proxy.proxy_server import prisma_client  # type: ignore[import-not-found]


async def custom_sso_handler(userIDPInfo: Any) -> Any:
    return prisma_client
