"""WebSocket consumer that pushes fleet events to signed-in users."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from dashboard.live import FLEET_GROUP


class LiveConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(FLEET_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(FLEET_GROUP, self.channel_name)

    async def fleet_event(self, message: dict) -> None:
        await self.send_json(message["event"])
