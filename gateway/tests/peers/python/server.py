"""A grpcio implementation of peer.v1.PeerService for tests/python_peer.rs.

Generates the Python stubs from tests/protos/peer/v1/peer.proto into a
temporary directory at start-up (grpc_tools' bundled protoc), serves on
127.0.0.1:0, prints "PORT <n>" on stdout, and runs until stdin closes or
SIGTERM/SIGINT arrives, so a test that dies does not leave it behind.

Every method echoes its request (see EchoReply in peer.proto). Requirements:
requirements.txt next to this file.
"""

import argparse
import importlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent.parent  # gateway/tests
REPO = TESTS.parent.parent  # the workspace root

# Metadata the transport adds; everything else is echoed back.
TRANSPORT_METADATA = {"user-agent", "te", "content-type", "accept-encoding"}
TRACE_METADATA = {"traceparent", "tracestate"}


def generate_stubs(out_dir, proto_root, includes):
    """peer/v1/peer_pb2.py and peer_pb2_grpc.py into out_dir.

    Only peer.proto is generated: google/api, google/rpc and the well-known
    types come from googleapis-common-protos and protobuf.
    """
    import grpc_tools
    from grpc_tools import protoc

    bundled = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{proto_root}"]
    args += [f"-I{inc}" for inc in includes]
    args += [
        f"-I{bundled}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "peer/v1/peer.proto",
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"grpc_tools.protoc failed with exit code {code}")


def load_modules(out_dir):
    sys.path.insert(0, str(out_dir))
    pb2 = importlib.import_module("peer.v1.peer_pb2")
    pb2_grpc = importlib.import_module("peer.v1.peer_pb2_grpc")
    return pb2, pb2_grpc


def make_servicer(pb2, pb2_grpc):
    import grpc
    from google.protobuf import any_pb2, json_format
    from google.rpc import code_pb2, error_details_pb2, status_pb2
    from grpc_status import rpc_status

    def metadata_of(context, method):
        out = {}
        for key, value in context.invocation_metadata():
            if key.startswith(":") or key.startswith("grpc-") or key in TRANSPORT_METADATA:
                continue
            # The gateway sends every call a trace context; only the header
            # forwarding cases (EchoHeaders) look at it.
            if key in TRACE_METADATA and method != "EchoHeaders":
                continue
            if key.endswith("-bin"):
                value = value.hex()
            # Repeated keys are joined, so the test sees every value.
            out[key] = f"{out[key]},{value}" if key in out else value
        return out

    def echo(method, request, context, field):
        context.send_initial_metadata([("x-peer-server", "python-grpcio")])
        reply = pb2.EchoReply(
            method=method,
            metadata=metadata_of(context, method),
            seen=json_format.MessageToJson(request, indent=None, sort_keys=True),
            deadline_seconds=context.time_remaining() or 0.0,
        )
        getattr(reply, field).CopyFrom(request)
        if field == "item" and request.HasField("mask"):
            reply.mask_paths.extend(request.mask.paths)
        if field == "update" and request.HasField("update_mask"):
            reply.mask_paths.extend(request.update_mask.paths)
        # Field 999 (varint 1, length-delimited "new") is not in peer.proto, as
        # if the server ran a newer schema: the gateway must skip it.
        reply.MergeFromString(b"\xb8\x3e\x01\xba\x3e\x03new")
        return reply

    class PeerService(pb2_grpc.PeerServiceServicer):
        def GetItem(self, request, context):
            return echo("GetItem", request, context, "item")

        def CreateItem(self, request, context):
            return echo("CreateItem", request, context, "item")

        def UpdateItem(self, request, context):
            return echo("UpdateItem", request, context, "update")

        def SetTags(self, request, context):
            return echo("SetTags", request, context, "item")

        def ArchiveItem(self, request, context):
            return echo("ArchiveItem", request, context, "item")

        def ViewItem(self, request, context):
            return echo("ViewItem", request, context, "item")

        def GetBook(self, request, context):
            return echo("GetBook", request, context, "book")

        def EchoHeaders(self, request, context):
            context.set_trailing_metadata([("x-peer-trailer", "done")])
            return echo("EchoHeaders", request, context, "item")

        def Fail(self, request, context):
            if request.HasField("ttl"):
                # A slow upstream: answer only after `ttl`.
                time.sleep(request.ttl.ToTimedelta().total_seconds())
            if request.count < 0:
                raise RuntimeError(f"boom {request.id}")
            code = request.count or code_pb2.UNKNOWN
            if not request.flag:
                context.abort(_grpc_code(grpc, code), request.name)
            info = error_details_pb2.ErrorInfo(
                reason="PEER_FAILED",
                domain="peer.test",
                metadata={"id": request.id},
            )
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="item.name", description="must not be empty"
                    )
                ]
            )
            tag = pb2.Tag(key="detail", value=request.id)
            unknown = any_pb2.Any(
                type_url="type.googleapis.com/peer.v1.NotInAnyProto",
                value=b"\x08\x01",
            )
            status = status_pb2.Status(code=code, message=request.name)
            for message in (info, bad, tag):
                status.details.add().Pack(message)
            status.details.append(unknown)
            context.abort_with_status(rpc_status.to_status(status))

    return PeerService()


def _grpc_code(grpc, number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto-root", default=str(TESTS / "protos"))
    parser.add_argument("--include", action="append", default=[str(REPO / "proto")])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--compression",
        choices=["none", "gzip"],
        default="none",
        help="compress responses (server-wide default, as grpc.server(compression=...) does)",
    )
    args = parser.parse_args()

    import grpc

    with tempfile.TemporaryDirectory(prefix="switchyard-peer-") as out_dir:
        generate_stubs(out_dir, args.proto_root, args.include)
        pb2, pb2_grpc = load_modules(out_dir)
        compression = {"none": None, "gzip": grpc.Compression.Gzip}[args.compression]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), compression=compression)
        pb2_grpc.add_PeerServiceServicer_to_server(make_servicer(pb2, pb2_grpc), server)
        port = server.add_insecure_port(f"127.0.0.1:{args.port}")
        if port == 0:
            raise SystemExit(f"cannot listen on 127.0.0.1:{args.port}")
        server.start()

        done = threading.Event()

        def stop(*_):
            done.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

        def watch_stdin():
            # EOF: the parent (the test) is gone or closed our stdin. The raw
            # fd, not sys.stdin: a daemon thread blocked inside a buffered
            # reader makes interpreter shutdown abort.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            done.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        print(f"PORT {port}", flush=True)
        # Wake up now and then so signals are handled promptly.
        while not done.wait(0.5):
            pass
        server.stop(grace=0.5).wait()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.exit(main())
