"""The worker pool against real engines: FIFO, positions, several engines, cancel, timeouts, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from runtimes.comfy.client import ComfyClient
from runtimes.contract import RunRequest, RunUpdate
from runtimes.engine.manager import Engine, EngineManager, EngineSettings
from runtimes.pool import WorkerPool
from tests.support.paths import CHECKPOINT, CHECKPOINT_NAME, ENGINE_HOME
from tests.support.prompts import load_invert
from tests.support.run_requests import (
    demo_request,
    image_of,
    inverted,
    new_run_id,
    txt2img_request,
)

FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


class Updates:
    """The pool's on_update: keeps every update, lets a test wait for one, runs an optional hook."""

    def __init__(self) -> None:
        self.items: list[RunUpdate] = []
        self.hook: Callable[[RunUpdate], None] | None = None
        self._changed = asyncio.Event()

    async def __call__(self, update: RunUpdate) -> None:
        self.items.append(update)
        if self.hook is not None:
            self.hook(update)
        self._changed.set()

    def of(self, run_id: str, *kinds: str) -> list[RunUpdate]:
        return [u for u in self.items if u.run_id == run_id and (not kinds or u.kind in kinds)]

    def kinds(self, run_id: str) -> list[str]:
        """The run's updates without the repeated progress/preview ones."""
        return [u.kind for u in self.of(run_id) if u.kind not in ("progress", "preview")]

    async def wait_for(self, run_id: str, *kinds: str, timeout: float = 60.0) -> RunUpdate:
        async with asyncio.timeout(timeout):
            while True:
                found = self.of(run_id, *kinds)
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def updates() -> Updates:
    return Updates()


@pytest.fixture
async def pool(updates: Updates) -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(on_update=updates)
    await pool.start()
    yield pool
    await pool.stop()


@pytest.fixture(scope="module")
def spare_engine(tmp_path_factory: pytest.TempPathFactory, sd15_checkpoint: str) -> Iterator[Engine]:
    """A second engine of this module's own: it runs beside the session engine, and it gets killed."""
    data_dir = tmp_path_factory.mktemp("spare-engine")
    link = data_dir / "comfyui" / "models" / "checkpoints" / CHECKPOINT_NAME
    link.parent.mkdir(parents=True)
    link.symlink_to(CHECKPOINT)
    manager = EngineManager(EngineSettings(data_dir=data_dir, engine_home=ENGINE_HOME, disable_api_nodes=True),
                            progress=lambda message: None)
    (engine,) = manager.start()
    engine.name = "spare"
    yield engine
    manager.stop()


async def _engine_is_idle(engine_url: str) -> bool:
    async with ComfyClient(engine_url) as comfy:
        state = await comfy.queue()
    return not state["queue_running"] and not state["queue_pending"]


# --- the queue ---------------------------------------------------------------------------------


async def test_runs_wait_for_an_engine_then_run_in_fifo_order(
    pool: WorkerPool, updates: Updates, engine: Engine
) -> None:
    colors = [0x000010 * (i + 1) for i in range(5)]
    requests = [demo_request(color) for color in colors]

    positions = [pool.submit(request) for request in requests]
    await asyncio.sleep(0.5)  # no engine yet: nothing may start
    assert positions == [1, 2, 3, 4, 5] and updates.items == []
    assert pool.queued_count() == 5 and pool.position(requests[2].run_id) == 3

    pool.add_engine(engine)
    done = [await updates.wait_for(r.run_id, *FINAL) for r in requests]

    assert [u.kind for u in done] == ["succeeded"] * 5
    started = sorted((u for u in updates.items if u.kind == "started"), key=lambda u: u.at)
    assert [u.run_id for u in started] == [r.run_id for r in requests]
    assert {u.worker for u in started} == {engine.name}
    # One worker, one prompt at a time: each run starts after the one before it ended.
    assert all(done[i].at <= started[i + 1].at for i in range(4))
    for update, color in zip(done, colors, strict=True):
        assert update.outcome is not None
        assert image_of(update.outcome.outputs[0].data).getpixel((0, 0)) == inverted(color)
    assert pool.queued_count() == 0 and pool.running() == {}


async def test_the_engine_takes_the_next_run_while_the_app_records_the_last_ones_end(engine: Engine) -> None:
    """Recording a run's end (its outputs stored, the database written) is off the engine's critical path."""
    first, second = demo_request(0x101010), demo_request(0x202020)
    recorded = asyncio.Event()  # the app's recording of the first run's end, held until the test lets it go
    seen: list[tuple[str, str]] = []

    async def on_update(update: RunUpdate) -> None:
        seen.append((update.run_id, update.kind))
        if (update.run_id, update.kind) == (first.run_id, "succeeded"):
            await recorded.wait()

    pool = WorkerPool(on_update=on_update)
    await pool.start()
    try:
        pool.submit(first)
        pool.submit(second)
        pool.add_engine(engine)
        async with asyncio.timeout(60):
            while (second.run_id, "succeeded") not in seen:
                await asyncio.sleep(0.02)
        # The second run started and ended on the (single) engine while the first one's end was being recorded.
        assert (first.run_id, "succeeded") in seen and not recorded.is_set()
    finally:
        recorded.set()
        await pool.stop()  # waits for the end reports still being recorded


async def test_stopping_the_pool_waits_for_the_end_reports_being_recorded(engine: Engine) -> None:
    request = demo_request(0x303030)
    finished: list[str] = []

    async def on_update(update: RunUpdate) -> None:
        if update.kind == "succeeded":
            await asyncio.sleep(0.5)  # a slow write of the run's end
            finished.append(update.run_id)

    pool = WorkerPool(on_update=on_update)
    await pool.start()
    pool.add_engine(engine)
    pool.submit(request)
    async with asyncio.timeout(60):
        while pool.queued_count() or pool.running():
            await asyncio.sleep(0.02)
    await pool.stop()
    assert finished == [request.run_id]


async def test_positions_and_the_front_of_the_queue(pool: WorkerPool) -> None:
    first, second, third = demo_request(1), demo_request(2), demo_request(3)
    assert [pool.submit(r) for r in (first, second, third)] == [1, 2, 3]

    retried = demo_request(4)
    assert pool.submit(retried, front=True) == 1

    assert pool.positions() == {retried.run_id: 1, first.run_id: 2, second.run_id: 3, third.run_id: 4}
    assert pool.position(third.run_id) == 4 and pool.position("no-such-run") is None
    with pytest.raises(ValueError, match="already queued"):
        pool.submit(first)


async def test_a_cancelled_queued_run_never_reaches_the_engine(
    pool: WorkerPool, updates: Updates, engine: Engine, client: ComfyClient
) -> None:
    keep1, dropped, keep2 = demo_request(0x111111), demo_request(0x222222), demo_request(0x333333)
    for request in (keep1, dropped, keep2):
        pool.submit(request)

    assert await pool.cancel(dropped.run_id) == "dequeued"
    assert pool.position(keep2.run_id) == 2
    assert updates.kinds(dropped.run_id) == ["cancelled"]
    assert await pool.cancel(dropped.run_id) == "not_found"

    pool.add_engine(engine)
    for request in (keep1, keep2):
        assert (await updates.wait_for(request.run_id, *FINAL)).kind == "succeeded"
    assert updates.kinds(dropped.run_id) == ["cancelled"]
    assert await client.history(dropped.run_id) is None


# --- several engines -----------------------------------------------------------------------------


async def test_two_engines_run_two_prompts_at_the_same_time(
    pool: WorkerPool, updates: Updates, engine: Engine, spare_engine: Engine, sd15_checkpoint: str
) -> None:
    pool.add_engine(engine)
    slow = txt2img_request(sd15_checkpoint, size=256, steps=40)
    pool.submit(slow)
    await updates.wait_for(slow.run_id, "progress")

    pool.add_engine(spare_engine)  # joins while the first engine is busy
    quick = demo_request(0x606060)
    pool.submit(quick)
    await updates.wait_for(quick.run_id, "started")
    both = pool.running()
    finished = await updates.wait_for(quick.run_id, *FINAL)

    assert both == {slow.run_id: engine.name, quick.run_id: "spare"}
    assert finished.kind == "succeeded" and finished.worker == "spare"
    assert not updates.of(slow.run_id, *FINAL)  # still sampling on the other engine
    assert await pool.cancel(slow.run_id) == "interrupted"
    assert (await updates.wait_for(slow.run_id, *FINAL)).kind == "cancelled"


# --- cancel, timeout, failures -----------------------------------------------------------------------


async def test_cancelling_a_running_run_interrupts_it_on_the_engine(
    pool: WorkerPool, updates: Updates, engine: Engine, sd15_checkpoint: str
) -> None:
    pool.add_engine(engine)
    slow = txt2img_request(sd15_checkpoint, size=256, steps=40)
    pool.submit(slow)
    await updates.wait_for(slow.run_id, "progress")
    assert pool.running() == {slow.run_id: engine.name}

    assert await pool.cancel(slow.run_id) == "interrupted"
    final = await updates.wait_for(slow.run_id, *FINAL, timeout=30)

    assert final.kind == "cancelled" and final.error is None
    assert updates.kinds(slow.run_id) == ["started", "cancelled"]
    progress = updates.of(slow.run_id, "progress")
    assert progress[0].progress == {"node": "3", "value": 1, "max": 40} and len(progress) < 40
    assert await _engine_is_idle(engine.url)  # stopped on the engine, not only forgotten by us
    assert await pool.cancel(slow.run_id) == "not_found"
    after = demo_request(0x404040)
    pool.submit(after)
    assert (await updates.wait_for(after.run_id, *FINAL)).kind == "succeeded"


async def test_a_run_past_its_timeout_is_stopped_and_the_engine_freed(
    pool: WorkerPool, updates: Updates, engine: Engine, sd15_checkpoint: str
) -> None:
    pool.add_engine(engine)
    slow = txt2img_request(sd15_checkpoint, size=256, steps=40, timeout_s=2.0)
    pool.submit(slow)

    final = await updates.wait_for(slow.run_id, *FINAL, timeout=30)

    assert final.kind == "timed_out"
    assert final.error is not None and final.error["type"] == "timeout"
    assert f"run {slow.run_id}: the run did not finish within 2 s" in final.error["message"]
    assert await _engine_is_idle(engine.url)  # interrupted there, not left sampling
    after = demo_request(0x505050)
    pool.submit(after)
    assert (await updates.wait_for(after.run_id, *FINAL, timeout=10)).kind == "succeeded"


async def test_stopping_the_pool_interrupts_the_prompt_and_keeps_the_run(
    pool: WorkerPool, updates: Updates, engine: Engine, sd15_checkpoint: str
) -> None:
    pool.add_engine(engine)
    slow = txt2img_request(sd15_checkpoint, size=256, steps=40)
    pool.submit(slow)
    await updates.wait_for(slow.run_id, "progress")

    await pool.stop()

    assert await _engine_is_idle(engine.url)
    assert pool.running() == {} and pool.position(slow.run_id) == 1  # back in the queue, first in line
    assert updates.kinds(slow.run_id) == ["started"]  # no verdict: it was not the run's fault
    assert await pool.cancel(slow.run_id) == "dequeued"


async def test_an_engine_refusal_fails_the_run_with_node_and_input(
    pool: WorkerPool, updates: Updates, engine: Engine
) -> None:
    pool.add_engine(engine)
    request = demo_request(0)
    request = RunRequest(run_id=request.run_id, workflow={**request.workflow, "1": {
        "class_type": "EmptyImage", "inputs": {"width": 0, "height": 16, "batch_size": 1, "color": 0}}},
        bindings=(), values={})
    pool.submit(request)

    final = await updates.wait_for(request.run_id, *FINAL)

    assert final.kind == "failed" and final.error is not None
    assert final.error["type"] == "validation_error"
    assert (final.error["node_id"], final.error["node_type"], final.error["input"]) == ("1", "EmptyImage", "width")
    assert "node 1 (EmptyImage), input 'width'" in final.error["message"]


async def test_a_node_that_raises_fails_the_run_with_its_exception(
    pool: WorkerPool, updates: Updates, engine: Engine
) -> None:
    from publisher import InputBinding

    pool.add_engine(engine)
    photo = InputBinding(node="1", input="image", type="image", name="photo")
    request = RunRequest(run_id=new_run_id(), workflow=load_invert("x.png"), bindings=(photo,), values={},
                         uploads={"photo": ("broken.png", b"this is not a png")})
    pool.submit(request)

    final = await updates.wait_for(request.run_id, *FINAL)

    assert final.kind == "failed" and final.error is not None
    assert (final.error["type"], final.error["node_id"], final.error["node_type"]) == (
        "execution_error", "1", "LoadImage")
    assert final.error["details"]["exception_type"] == "PIL.UnidentifiedImageError"


# --- engine crashes (the spare engine: its supervisor restarts it) ---------------------------------------


def _kill_on_progress(engine: Engine, updates: Updates, run_id: str, times: int) -> list[int]:
    """Kill the engine at the first progress of each of the run's first `times` attempts."""
    killed: list[int] = []
    attempts = [0]

    def hook(update: RunUpdate) -> None:
        if update.run_id != run_id:
            return
        if update.kind == "started":
            attempts[0] += 1
        elif update.kind == "progress" and len(killed) < min(attempts[0], times):
            pid = engine.process.pid  # type: ignore[union-attr]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    updates.hook = hook
    return killed


async def test_a_run_whose_engine_dies_is_retried_once_and_succeeds(
    pool: WorkerPool, updates: Updates, spare_engine: Engine, sd15_checkpoint: str
) -> None:
    pool.add_engine(spare_engine)
    request = txt2img_request(sd15_checkpoint, size=128, steps=4)
    killed = _kill_on_progress(spare_engine, updates, request.run_id, times=1)
    pool.submit(request)

    final = await updates.wait_for(request.run_id, *FINAL, timeout=120)

    assert final.kind == "succeeded", final.error
    assert updates.kinds(request.run_id) == ["started", "retrying", "started", "succeeded"]
    retrying = updates.of(request.run_id, "retrying")[0]
    assert retrying.error is not None and retrying.error["type"] == "engine_lost"
    assert "restarted while the run was in progress" in retrying.error["message"]
    assert len(killed) == 1 and spare_engine.process.pid != killed[0]  # type: ignore[union-attr]
    assert final.outcome is not None and image_of(final.outcome.outputs[0].data).size == (128, 128)


async def test_a_run_whose_engine_dies_twice_fails_with_the_engine_log(
    pool: WorkerPool, updates: Updates, spare_engine: Engine, sd15_checkpoint: str
) -> None:
    pool.add_engine(spare_engine)
    request = txt2img_request(sd15_checkpoint, size=128, steps=4)
    killed = _kill_on_progress(spare_engine, updates, request.run_id, times=2)
    started = time.monotonic()
    pool.submit(request)

    final = await updates.wait_for(request.run_id, *FINAL, timeout=180)

    assert len(killed) == 2
    assert updates.kinds(request.run_id) == ["started", "retrying", "started", "failed"]
    assert final.error is not None and final.error["type"] == "engine_lost"
    message = final.error["message"]
    assert message.startswith("The engine was lost 2 times while running this run; giving up.")
    assert "Last lines of the engine log (spare):" in message
    tail = final.error["details"]["log_tail"]
    assert tail and tail in message
    log_text = spare_engine.process.launch.log_path.read_text()  # type: ignore[union-attr]
    crashed, _, restarted = tail.partition("\n--- restarted ---\n")
    assert crashed and restarted  # the dead process's last lines, then the new one's
    assert all(line in log_text for line in [*crashed.splitlines(), *restarted.splitlines()])
    assert len(final.error["details"]["losses"]) == 2
    print(f"two crashes handled in {time.monotonic() - started:.1f} s")


async def test_losses_before_a_restart_count_against_the_limit(
    pool: WorkerPool, updates: Updates, spare_engine: Engine, sd15_checkpoint: str
) -> None:
    # What the app queues after a restart for a run that had lost its engine once before.
    # The engine's own crash-loop limit (MAX_RESTARTS in RESTART_WINDOW_S) is not this test's subject: this kill
    # would be the module's fourth, so the engine would not be restarted and the run's client would wait out its
    # reconnect timeout (30 s) before it counts the loss. A fresh window: the engine comes back as after a crash.
    spare_engine.restarts.clear()
    pool.add_engine(spare_engine)
    request = txt2img_request(sd15_checkpoint, size=128, steps=4)
    killed = _kill_on_progress(spare_engine, updates, request.run_id, times=1)
    pool.submit(request, earlier_losses=["attempt 1 did not finish"])

    final = await updates.wait_for(request.run_id, *FINAL, timeout=120)

    assert len(killed) == 1
    assert updates.kinds(request.run_id) == ["started", "failed"]  # not retried a second time
    assert final.error is not None and final.error["type"] == "engine_lost"
    assert final.error["message"].startswith("The engine was lost 2 times while running this run; giving up.")
    assert final.error["details"]["losses"][0] == "attempt 1 did not finish"
