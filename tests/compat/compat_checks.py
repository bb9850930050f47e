"""Shared by the Python compatibility scripts: one-line checks and running a query to its end."""

import sys

from azure.iot.hub.models import QuerySpecification


def check(condition, what):
    """Prints `ok: what`, or `FAIL: what` and exits 1."""
    if not condition:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


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
