"""The client when the network or the engine fails mid-run: it never leaves a run hanging."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from runtimes.comfy import events as ev
from runtimes.comfy.client import ComfyClient, Timeouts
from runtimes.comfy.errors import EngineConnectionLostError, PromptLostError
from runtimes.engine.manager import Engine, EngineManager, EngineSettings
from tests.support.paths import CHECKPOINT, CHECKPOINT_NAME, ENGINE_HOME
from tests.support.prompts import demo_invert, txt2img
from tests.support.tcp_proxy import TcpProxy


def _proxy_for(engine_url: str) -> TcpProxy:
    parts = urlsplit(engine_url)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or 80)


def _on_first(kind: type[ev.EngineEvent], action: Callable[[], object]) -> tuple[asyncio.Event, Callable]:
    """An on_event callback that runs `action` once, at the first event of a kind."""
    fired = asyncio.Event()

    async def on_event(event: ev.EngineEvent) -> None:
        if isinstance(event, kind) and not fired.is_set():
            fired.set()
            result = action()
            if asyncio.iscoroutine(result):
                await result

    return fired, on_event


async def test_run_survives_a_websocket_drop(engine_url: str, sd15_checkpoint: str) -> None:
    async with _proxy_for(engine_url) as proxy, ComfyClient(proxy.url) as comfy:
        fired, on_event = _on_first(ev.Progress, proxy.sever)
        prompt_id = uuid.uuid4().hex
        result = await comfy.run(txt2img(sd15_checkpoint, size=128, steps=6, prefix=f"test/{prompt_id}/i"),
                                 prompt_id=prompt_id, on_event=on_event)

    assert fired.is_set()
    assert len(result.outputs) == 1 and result.outputs[0].filename.endswith(".png")


async def test_run_that_ends_while_disconnected_is_reconciled_from_history(
    engine_url: str, sd15_checkpoint: str
) -> None:
    async with _proxy_for(engine_url) as proxy, ComfyClient(proxy.url) as comfy:

        async def away_until_the_run_is_over() -> None:
            proxy.refusing = True
            proxy.sever()
            # Back only once the engine (asked directly) has finished: its end was announced to nobody.
            async with ComfyClient(engine_url) as direct:
                for _ in range(250):
                    if await direct.history(prompt_id) is not None:
                        break
                    await asyncio.sleep(0.1)
            proxy.refusing = False

        fired, on_event = _on_first(ev.ExecutionStart, lambda: asyncio.create_task(away_until_the_run_is_over()))
        prompt_id = uuid.uuid4().hex
        result = await comfy.run(txt2img(sd15_checkpoint, size=128, steps=4, prefix=f"test/{prompt_id}/i"),
                                 prompt_id=prompt_id, on_event=on_event)

    assert fired.is_set()
    assert result.events[-1] == "reconciled_from_history" and "execution_success" not in result.events
    assert [output.subfolder for output in result.outputs] == [f"test/{prompt_id}"]


async def test_reconnect_gives_up_with_a_clear_error(engine_url: str, sd15_checkpoint: str) -> None:
    async with _proxy_for(engine_url) as proxy:
        comfy = ComfyClient(proxy.url, timeouts=Timeouts(reconnect=1.5))
        prompt_id = uuid.uuid4().hex

        def go_away() -> None:
            proxy.refusing = True
            proxy.sever()

        _, on_event = _on_first(ev.Progress, go_away)
        with pytest.raises(EngineConnectionLostError, match=f"during run {prompt_id} and it did not come back "
                                                            "within 1.5 s"):
            await comfy.run(txt2img(sd15_checkpoint, size=256, steps=20, prefix=f"test/{prompt_id}/i"),
                            prompt_id=prompt_id, on_event=on_event)
        await comfy.aclose()
    async with ComfyClient(engine_url) as direct:
        await direct.cancel(prompt_id)  # the engine itself is fine: free it for the next test


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[tuple[EngineManager, Engine]]:
    """An engine of this test's own: it is going to be killed."""
    manager = EngineManager(EngineSettings(data_dir=tmp_path, engine_home=ENGINE_HOME, disable_api_nodes=True),
                            progress=lambda message: None)
    link = tmp_path / "comfyui" / "models" / "checkpoints" / CHECKPOINT_NAME
    link.parent.mkdir(parents=True)
    link.symlink_to(CHECKPOINT)
    (engine,) = manager.start()
    yield manager, engine
    manager.stop()


async def test_engine_crash_mid_run_is_reported_as_lost_work(
    own_engine: tuple[EngineManager, Engine], sd15_checkpoint: str
) -> None:
    manager, engine = own_engine
    restarted = asyncio.Event()
    loop = asyncio.get_running_loop()
    manager.on_restart(lambda _engine: loop.call_soon_threadsafe(restarted.set))
    crashed_pid = engine.process.pid  # type: ignore[union-attr]

    async with ComfyClient(engine.url) as comfy:
        _, on_event = _on_first(ev.Progress, lambda: os.kill(crashed_pid, signal.SIGKILL))  # type: ignore[arg-type]
        prompt_id = uuid.uuid4().hex
        with pytest.raises(PromptLostError, match=f"no longer knows run {prompt_id}: it restarted"):
            await comfy.run(txt2img(sd15_checkpoint, size=256, steps=20, prefix=f"test/{prompt_id}/i"),
                            prompt_id=prompt_id, on_event=on_event)

        await asyncio.wait_for(restarted.wait(), 60)
        assert engine.process.pid != crashed_pid  # type: ignore[union-attr]
        # The supervisor brought it back on the same URL, and it runs work again.
        result = await comfy.run(demo_invert(3, prefix=f"test/{uuid.uuid4().hex}/img"))
        assert result.outputs
