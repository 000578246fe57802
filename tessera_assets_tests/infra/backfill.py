"""Launch an asset backfill through the webserver's GraphQL API — the mutation the UI's
"Materialize → Launch backfill" sends — and wait for it."""

from __future__ import annotations

import time
from typing import Any

from tessera_assets_tests.infra.dagster_stack import DagsterStack

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
  }
}
"""

STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions }
    ... on PythonError { message }
  }
}
"""

DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def launch_asset_backfill(stack: DagsterStack, assets: list[str], partitions: list[str],
                          title: str = "") -> str:
    data = stack.graphql(LAUNCH, {"params": {
        "assetSelection": [{"path": [a]} for a in assets],
        "partitionNames": partitions, "fromFailure": False, "title": title or None,
    }})["launchPartitionBackfill"]
    if data["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill launch failed: {data}")
    return str(data["backfillId"])


def wait_for_backfill(stack: DagsterStack, backfill_id: str, timeout: float,
                      poll: float = 2.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        status = stack.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if status.get("status") in DONE:
            return status
        dead = [name for name, ok in stack.alive().items() if not ok]
        if dead:
            raise RuntimeError(f"{dead} exited while backfill {backfill_id} ran")
        if time.time() > deadline:
            raise TimeoutError(f"backfill {backfill_id} not done after {timeout:.0f} s: {status}")
        time.sleep(poll)
