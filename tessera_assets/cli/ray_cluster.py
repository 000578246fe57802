"""``tessera-assets ray up|down|status``: the local long-lived Ray cluster partition runs attach
to (docs/adr/005-shared-inference-service.md). Production uses KubeRay instead."""

from __future__ import annotations

import argparse
import os

from tessera_assets.cli.common import console


def cmd_ray(args: argparse.Namespace) -> int:
    from tessera_assets.inference import local_cluster
    from tessera_assets.inference.cluster_address import reachable, read_state, state_dir

    if args.ray_cmd == "up":
        cpus = args.cpus or os.cpu_count() or 1
        cluster = local_cluster.up(head_cpus=cpus, head_slots=args.slots,
                                   worker_nodes=args.worker_nodes, worker_slots=args.slots)
        console.print(f"Ray cluster at [cyan]{cluster.address}[/]: nodes {cluster.nodes}, "
                      f"{cluster.slots} {cluster.slot_resource} slot(s); state in {state_dir()}",
                      highlight=False)
        return 0
    if args.ray_cmd == "down":
        stopped = local_cluster.down()
        console.print("stopped the local Ray cluster" if stopped else "no local Ray cluster ran")
        return 0
    state = read_state()
    if not state or not reachable(state["address"]):
        console.print("no local Ray cluster is running (start one: tessera-assets ray up)",
                      highlight=False)
        return 1
    console.print(f"Ray cluster at {state['address']}: nodes {state['nodes']}, "
                  f"{state['slots']} {state['slot_resource']} slot(s)", highlight=False)
    return 0


def add_parser(sub) -> None:
    r = sub.add_parser("ray", help="the local long-lived Ray cluster runs attach to")
    rsub = r.add_subparsers(dest="ray_cmd", required=True)
    up = rsub.add_parser("up", help="start it (or report the running one)")
    up.add_argument("--cpus", type=int, default=0, help="CPUs of the head (default: all)")
    up.add_argument("--slots", type=int, default=1, help="inference slots per node")
    up.add_argument("--worker-nodes", type=int, default=0,
                    help="extra worker nodes on their own loopback addresses")
    rsub.add_parser("down", help="stop it (only its own processes)")
    rsub.add_parser("status", help="is it running, and where")
