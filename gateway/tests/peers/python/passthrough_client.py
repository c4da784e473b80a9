"""A grpcio client of the demo services, for the gateway's passthrough tests.

Generates the demo stubs into a temporary directory (grpc_tools' bundled
protoc), then calls through the gateway at ADDRESS (host:port), plaintext
HTTP/2, one call of each kind:

  unary            UserService/GetUser {id: "2"}
  server streaming OrderService/WatchOrders {user_id: "1"}: the first order
  client streaming InventoryService/SumStock A-1, A-9, A-1
  bidi streaming   InventoryService/LookupStock B-9 then A-2, each answer
                   read before the next SKU is sent
  error            InventoryService/LookupStock Z-404: NOT_FOUND

and prints one JSON object per call on standard output:
  {"call": "...", ...fields...}
Exits 0 when every call ran (the Rust test checks the values), 1 on usage
errors, 2 when a call failed unexpectedly (the error on standard error).
"""

import json
import queue
import sys
import tempfile
from pathlib import Path

import grpc


def generate_stubs(out_dir, proto_root):
    import grpc_tools
    from grpc_tools import protoc

    bundled = Path(grpc_tools.__file__).resolve().parent / "_proto"
    files = [
        "demo/users/v1/users.proto",
        "demo/orders/v1/orders.proto",
        "demo/inventory/v1/inventory.proto",
    ]
    args = ["grpc_tools.protoc", f"-I{proto_root}", f"-I{bundled}"]
    args += [f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"] + files
    if protoc.main(args) != 0:
        raise SystemExit("grpc_tools.protoc failed")


def emit(call, **fields):
    print(json.dumps({"call": call, **fields}), flush=True)


def main():
    if len(sys.argv) != 3:
        print("usage: passthrough_client.py ADDRESS PROTO_ROOT", file=sys.stderr)
        return 1
    address, proto_root = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as out:
        generate_stubs(out, proto_root)
        sys.path.insert(0, out)
        from demo.inventory.v1 import inventory_pb2, inventory_pb2_grpc
        from demo.orders.v1 import orders_pb2, orders_pb2_grpc
        from demo.users.v1 import users_pb2, users_pb2_grpc

        with grpc.insecure_channel(address) as channel:
            users = users_pb2_grpc.UserServiceStub(channel)
            orders = orders_pb2_grpc.OrderServiceStub(channel)
            inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
            sku = inventory_pb2.GetStockRequest

            user = users.GetUser(users_pb2.GetUserRequest(id="2"), timeout=10)
            emit("unary", name=user.name)

            stream = orders.WatchOrders(orders_pb2.WatchOrdersRequest(user_id="1"), timeout=10)
            first = next(stream)
            stream.cancel()
            emit("server_streaming", user_id=first.user_id)

            total = inventory.SumStock(iter([sku(sku="A-1"), sku(sku="A-9"), sku(sku="A-1")]), timeout=10)
            emit("client_streaming", skus=total.skus, available=total.available)

            # Bidi: the next request is only sent once its answer came back.
            requests = queue.Queue()
            answers = inventory.LookupStock(iter(requests.get, None), timeout=10)
            seen = []
            for name in ["B-9", "A-2"]:
                requests.put(sku(sku=name))
                answer = next(answers)
                seen.append([answer.sku, answer.available])
            requests.put(None)
            emit("bidi_streaming", answers=seen)

            try:
                list(inventory.LookupStock(iter([sku(sku="Z-404")]), timeout=10))
                emit("error", code="OK")
            except grpc.RpcError as e:
                emit("error", code=e.code().name, details=e.details())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as e:
        print(f"passthrough_client.py: {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(2)
