// Hive Gateway serving the supergraph composed by mesh.config.ts
// (bench/graphql/run.sh). Start it with an explicit `-c gateway.config.ts`:
// without -c the CLI would pick up mesh.config.ts as its own config.
//
//   NODE_ENV=production npx hive-gateway supergraph --fork 1 -c gateway.config.ts
import { defineConfig } from '@graphql-hive/gateway';

export const gatewayConfig = defineConfig({
  supergraph: './supergraph.graphql',
  host: '127.0.0.1',
  port: Number(process.env.HIVE_PORT || 4000),
  // Benchmark settings: no per-request logging, no landing page; everything
  // else (validation, parsing cache, error masking, plan cache) is the default.
  logging: 'error',
  landingPage: false,
});
