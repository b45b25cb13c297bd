"""Simulated visitors that speak Streamlit's own websocket protocol: no browser, one process for N sessions.

A browser tab of a Streamlit app is a websocket to ``/_stcore/stream`` carrying protobuf messages that ship
inside the ``streamlit`` package: the tab sends ``BackMsg`` (``rerun_script`` with the page and the widgets'
values, as the frontend's ``WidgetStateManager`` does), and the server answers with ``ForwardMsg`` deltas,
one per element, until ``script_finished``. An ``st.image`` arrives as a delta holding a ``/media/...``
URL, which the tab then fetches over HTTP. A session here does the same: it opens a page, then, after a
think time, changes one widget and times from the message it sends to the end of the HTTP fetch of the
first new image. Everything is on loopback, bounded by a deadline, and cancelled when the time is up.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect

REPLY_TIMEOUT_S = 60.0  # a change with no new image within this is an error, not a wait


@dataclass
class Page:
    """What one run of a page sent: its widgets by label (their ids) and its image URLs, in order."""

    widgets: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)  # a slider's value as the page drew it, by label
    fragments: dict[str, str] = field(default_factory=dict)  # the fragment a widget is drawn in, by label
    images: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)  # seconds from the change to the new image fetched
    deltas: list[float] = field(default_factory=list)  # seconds from the change to the new image's message
    errors: list[str] = field(default_factory=list)
    ready: int = 0  # sessions whose page rendered once


def rerun_message(page_name: str, values: dict[str, float | int | str] | None = None, fragment_id: str = "") -> bytes:
    """The ``BackMsg`` a tab sends to run ``page_name`` (or only its fragment ``fragment_id``, as for a widget
    drawn in one) with these widget values (widget id -> a slider's float, a number input's int, or the option
    a radio shows)."""
    msg = BackMsg()
    msg.rerun_script.query_string = ""
    msg.rerun_script.page_name = page_name
    msg.rerun_script.fragment_id = fragment_id
    for wid, value in (values or {}).items():
        w = msg.rerun_script.widget_states.widgets.add()
        w.id = wid
        if isinstance(value, str):
            w.string_value = value  # a radio's or a selectbox's option, as Streamlit 1.67's frontend sends it
        elif isinstance(value, int):
            w.int_value = value
        else:
            w.double_array_value.data.append(value)  # a slider's value, as the frontend sends it
    return msg.SerializeToString()


def _read(fwd: ForwardMsg, page: Page) -> None:
    if fwd.WhichOneof("type") != "delta" or fwd.delta.WhichOneof("type") != "new_element":
        return
    element = fwd.delta.new_element
    kind = element.WhichOneof("type")
    proto = getattr(element, kind)
    if kind == "imgs":
        page.images += [img.url for img in proto.imgs]
    elif kind == "exception":
        page.exceptions.append(proto.message)
    elif getattr(proto, "id", "") and getattr(proto, "label", ""):
        page.widgets[proto.label] = proto.id
        page.fragments[proto.label] = fwd.delta.fragment_id
        if kind == "slider":
            page.values[proto.label] = (list(proto.value) or list(proto.default) or [0.0])[0]


async def run_page(
    ws, page_name: str, values: dict | None = None, first_image: asyncio.Future = None, fragment_id: str = ""
):
    """Send a rerun and read until ``script_finished``; ``first_image`` gets the first image URL as it arrives."""
    await ws.send(rerun_message(page_name, values, fragment_id))
    page = Page()
    while True:
        fwd = ForwardMsg()
        fwd.ParseFromString(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
        _read(fwd, page)
        if first_image is not None and page.images and not first_image.done():
            first_image.set_result(page.images[0])
        if fwd.WhichOneof("type") == "script_finished":
            return page


async def http_get(host: str, port: int, path: str) -> int:
    """GET ``path`` (a media file) on a fresh connection; the number of bytes of the response."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {data[:40]!r}")
    return len(data)


async def visitor(
    host: str,
    port: int,
    page_name: str,
    label: str,
    values: list[float],
    think_s: tuple[float, float],
    deadline: float,
    results: Results,
    rng: random.Random,
    walk: bool = False,
) -> None:
    """One tab: open ``page_name``, then until ``deadline`` wait a think time and move slider ``label``: to
    any other of ``values`` at random, or with ``walk`` one step along them, turning at either end, as the
    browser bench's arrow keys do."""
    async with connect(f"ws://{host}:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None) as ws:
        page = await run_page(ws, page_name)
        if label not in page.widgets:
            raise RuntimeError(f"no widget labelled {label!r} on {page_name}: {sorted(page.widgets)}")
        results.ready += 1
        wid, value = page.widgets[label], page.values.get(label)
        i, step = min(range(len(values)), key=lambda j: abs(values[j] - (value or 0.0))), 1
        while time.monotonic() + think_s[1] < deadline:
            await asyncio.sleep(rng.uniform(*think_s))
            if walk:
                step = -1 if i + step >= len(values) else 1 if i + step < 0 else step
                i += step
                value = values[i]
            else:
                value = rng.choice([v for v in values if v != value])  # a change, never the value it has
            t0 = time.perf_counter()
            first = asyncio.get_running_loop().create_future()
            rerun = asyncio.create_task(run_page(ws, page_name, {wid: value}, first))
            # the tab shows the new image as soon as its delta and its file are in, while the page runs on
            await asyncio.wait([first, rerun], return_when=asyncio.FIRST_COMPLETED)
            if first.done():
                results.deltas.append(time.perf_counter() - t0)
                await http_get(host, port, first.result())
                results.latencies.append(time.perf_counter() - t0)
            page = await rerun
            if page.exceptions:
                results.errors.append(page.exceptions[0][:200])
            elif not first.done():
                results.errors.append("no image in the rerun")


async def visit(host: str, port: int, page_name: str) -> tuple[float, Page]:
    """A new tab opening ``page_name``: seconds until its script has finished and every image has arrived."""
    t0 = time.perf_counter()
    async with connect(f"ws://{host}:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None) as ws:
        page = await run_page(ws, page_name)
    await asyncio.gather(*(http_get(host, port, url) for url in dict.fromkeys(page.images)))
    return time.perf_counter() - t0, page


async def visitor_of(
    host: str, port: int, page_name: str, think_s: tuple, deadline: float, results: Results, rng: random.Random
) -> None:
    """Someone who opens ``page_name`` in a new tab, looks, leaves, and comes back after a think time."""
    results.ready += 1
    while time.monotonic() + think_s[1] < deadline:
        seconds, page = await visit(host, port, page_name)
        if page.exceptions:
            results.errors.append(page.exceptions[0][:200])
        elif not page.images:
            results.errors.append("no image on the page")
        else:
            results.latencies.append(seconds)
        await asyncio.sleep(rng.uniform(*think_s))


async def crowd(
    host: str,
    port: int,
    page_name: str,
    label: str | None,
    values: list[float],
    sessions: int,
    seconds: float,
    think_s: tuple[float, float] = (1.0, 3.0),
    seed: int = 0,
    walk: bool = False,
) -> Results:
    """``sessions`` visitors for ``seconds``, joining over the first two seconds; their results together. With
    ``label`` None, each visitor opens the page in a new tab again and again (``visitor_of``)."""
    results, deadline = Results(), time.monotonic() + seconds

    async def one(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        await asyncio.sleep(rng.uniform(0, 2))
        try:
            if label is None:
                await visitor_of(host, port, page_name, think_s, deadline, results, rng)
            else:
                await visitor(host, port, page_name, label, values, think_s, deadline, results, rng, walk)
        except Exception as e:  # noqa: BLE001 - every failure of a session is counted, none stops the others
            results.errors.append(f"{type(e).__name__}: {str(e)[:200]}")

    tasks = [asyncio.create_task(one(i)) for i in range(sessions)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), seconds + REPLY_TIMEOUT_S + 5)
    except TimeoutError:
        results.errors.append("sessions still running at the deadline were cancelled")
    return results
