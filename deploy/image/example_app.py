#!/usr/bin/python3
"""The example application of deploy/k8s: a small client of the rowgate sidecar.

It stands for "your service" in the pod: it dials rowgate over the unix
socket the two containers share and, every APP_INTERVAL_S seconds, asks
grpc.health.v1.Health for rowgate.v1.DataService and makes one BatchGet
(APP_ENTITY, primary key APP_KEY), printing one JSON line per round. It
writes nothing. SIGTERM ends it with status 0.

  example_app.py            loop until SIGTERM
  example_app.py --once     one round; exit 0 only if health is SERVING and
                            the BatchGet was answered (found or not)
  --expect-found            with --once: the key must also be found

Environment (defaults in brackets):
  APP_ROWGATE_TARGET  [unix:///run/rowgate/rowgate.sock]  any gRPC target,
                      e.g. 127.0.0.1:50051 for the loopback alternative
  APP_ENTITY [users]  APP_KEY [1]  APP_INTERVAL_S [10]
  APP_STUBS_DIR       where rowgate/v1/rowgate_pb2*.py and health_pb2*.py
                      (grpc.health.v1) are [this file's folder]

It needs Debian's python3-grpcio and python3-protobuf, and stubs generated
by protoc with grpc_python_plugin (deploy/Dockerfile makes them).
"""

import json
import os
import signal
import sys
import threading

import grpc

TARGET = os.environ.get("APP_ROWGATE_TARGET", "unix:///run/rowgate/rowgate.sock")
ENTITY = os.environ.get("APP_ENTITY", "users")
KEY = int(os.environ.get("APP_KEY", "1"))
INTERVAL_S = float(os.environ.get("APP_INTERVAL_S", "10"))
TIMEOUT_S = 5

sys.path.insert(0, os.environ.get("APP_STUBS_DIR", os.path.dirname(os.path.abspath(__file__))))
import health_pb2, health_pb2_grpc  # noqa: E402  (grpc.health.v1, generated flat: `grpc` is grpcio's)
from rowgate.v1 import rowgate_pb2, rowgate_pb2_grpc  # noqa: E402


def one_round(channel):
    """Returns (ok, found, report): ok when SERVING and BatchGet answered."""
    report = {"target": TARGET, "entity": ENTITY, "key": KEY}
    try:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="rowgate.v1.DataService"), timeout=TIMEOUT_S)
        report["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        answer = rowgate_pb2_grpc.DataServiceStub(channel).BatchGet(
            rowgate_pb2.BatchGetRequest(entity=ENTITY, keys=[rowgate_pb2.Value(int64_value=KEY)]),
            timeout=TIMEOUT_S)
        result = answer.results[0]
        report["found"] = result.found
        # Column names only: row values are the application's business.
        report["columns"] = sorted(result.rows[0].fields) if result.rows else []
        return report["health"] == "SERVING", result.found, report
    except grpc.RpcError as e:
        report["error"] = f"{e.code().name}: {e.details()}"
        return False, False, report


def main(argv):
    once = "--once" in argv
    expect_found = "--expect-found" in argv
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with grpc.insecure_channel(TARGET) as channel:
        while True:
            ok, found, report = one_round(channel)
            print(json.dumps(report), flush=True)
            if once:
                return 0 if ok and (found or not expect_found) else 1
            if stop.wait(INTERVAL_S):
                return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
