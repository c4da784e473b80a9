// Composes the supergraph that Hive Gateway serves in the GraphQL benchmark
// (bench/graphql/run.sh): the three demo gRPC services from their .proto files,
// plus two cross-service fields (@resolveTo) so that one query can join an
// order with its user (UserService.GetUser) and each line item with its stock
// (InventoryService.GetStock), the same joins Switchyard answers natively.
//
//   npx mesh-compose -c mesh.config.ts -o supergraph.graphql
//
// Upstream addresses come from DEMO_USERS_ADDR / DEMO_ORDERS_ADDR /
// DEMO_INVENTORY_ADDR (host:port), default 127.0.0.1:50051-50053.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from '@graphql-mesh/compose-cli';
import { loadGrpcSubgraph } from '@omnigraph/grpc';

const here = dirname(fileURLToPath(import.meta.url));
// `proto/` of the repo is the import root of the demo protos (google/api/* is
// vendored there); protobufjs ships google/protobuf/descriptor.proto, which
// google/api/annotations.proto imports.
const protoDir = join(here, '..', '..', 'proto');
const includeDirs = [protoDir, join(here, 'node_modules', 'protobufjs')];

const addr = (name: string, fallback: string) => process.env[name] || fallback;

const grpc = (name: string, file: string, endpoint: string) => ({
  sourceHandler: loadGrpcSubgraph(name, {
    endpoint,
    // `file` is a glob resolved against the working directory, so make it absolute.
    source: { file: join(protoDir, file), load: { includeDirs } },
  }),
});

export const composeConfig = defineConfig({
  subgraphs: [
    grpc('users', 'demo/users/v1/users.proto', addr('DEMO_USERS_ADDR', '127.0.0.1:50051')),
    grpc('orders', 'demo/orders/v1/orders.proto', addr('DEMO_ORDERS_ADDR', '127.0.0.1:50052')),
    grpc('inventory', 'demo/inventory/v1/inventory.proto', addr('DEMO_INVENTORY_ADDR', '127.0.0.1:50053')),
  ],
  // The joins: Order.user from UserService.GetUser(id = order.user_id) and
  // LineItem.stock from InventoryService.GetStock(sku = item.sku).
  additionalTypeDefs: /* GraphQL */ `
    extend type demo__orders__v1__Order {
      user: demo__users__v1__User
        @resolveTo(
          sourceName: "users"
          sourceTypeName: "Query"
          sourceFieldName: "demo_users_v1_UserService_GetUser"
          requiredSelectionSet: "{ user_id }"
          sourceArgs: { input: { id: "{root.user_id}" } }
        )
    }
    extend type demo__orders__v1__LineItem {
      stock: demo__inventory__v1__Stock
        @resolveTo(
          sourceName: "inventory"
          sourceTypeName: "Query"
          sourceFieldName: "demo_inventory_v1_InventoryService_GetStock"
          requiredSelectionSet: "{ sku }"
          sourceArgs: { input: { sku: "{root.sku}" } }
        )
    }
  `,
});
