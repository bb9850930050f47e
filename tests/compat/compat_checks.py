"""Shared by the Python compatibility scripts: one-line checks, named flows, running a query to
its end, and the few connection-string and HTTPS helpers the SDKs have no call for."""

import contextlib
import json
import queue
import sys
import time
import traceback

from azure.iot.hub.models import QuerySpecification

_current_flow = None


def check(condition, what):
    """Prints `ok: what`, or `FAIL: what` (naming the flow being run) and exits 1."""
    if not condition:
        where = f" [flow {_current_flow}]" if _current_flow else ""
        print(f"FAIL{where}: {what}", file=sys.stderr)
        if _current_flow:
            print(f"compat flow FAILED: {_current_flow}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


@contextlib.contextmanager
def flow(name):
    """Runs one named flow: its checks and any exception it raises are reported under `name`."""
    global _current_flow
    _current_flow = name
    print(f"== flow: {name}")
    try:
        yield
    except SystemExit:
        raise
    except Exception as e:  # an SDK call failed: say which flow and how, then stop
        traceback.print_exc()
        detail = ""
        response = getattr(e, "response", None)
        if response is not None and hasattr(response, "status_code"):
            detail = f" (HTTP {response.status_code} {response.headers.get('iothub-errorcode', '')}: {response.text[:300]})"
        print(f"FAIL [flow {name}]: {type(e).__name__}: {e}{detail}", file=sys.stderr)
        print(f"compat flow FAILED: {name}", file=sys.stderr)
        sys.exit(1)
    print(f"== flow passed: {name}")
    _current_flow = None


def run_query(registry, text, page_size=None):
    """Runs a query to the end through the SDK's pager; returns (items, number of pages)."""
    items, pages, token = [], 0, None
    while True:
        result = registry.query_iot_hub(QuerySpecification(query=text), token, page_size)
        pages += 1
        items.extend(result.items)
        token = result.continuation_token
        if not token:
            return items, pages
        if pages >= 50:
            check(False, "paging terminates")


def load_ready(path):
    """The emulator's ready file (connection strings, CA file)."""
    with open(path) as f:
        return json.load(f)


def parse_connection_string(text):
    return dict(part.split("=", 1) for part in text.split(";") if part)


def module_connection_string(hostname, device_id, module_id, key):
    """The connection string the portal shows for a module identity."""
    return f"HostName={hostname};DeviceId={device_id};ModuleId={module_id};SharedAccessKey={key}"


def device_connection_string(hostname, device_id, key):
    return f"HostName={hostname};DeviceId={device_id};SharedAccessKey={key}"


def next_item(q, what, seconds=20):
    """The next item a handler put on `q`, or a failed check named `what`."""
    try:
        return q.get(timeout=seconds)
    except queue.Empty:
        check(False, f"{what} (nothing within {seconds} s)")
        return None


def wait_until(predicate, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            check(True, what)
            return
        time.sleep(0.1)
    check(False, what)
