//! The `graphql:` section: a GraphQL endpoint whose schema is generated from
//! the gRPC services of the configured routes (docs/graphql.md).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A GraphQL endpoint (`POST`/`GET` at `path`) whose schema is generated from
/// the services of `routes:`: each method becomes a Query, Mutation or
/// Subscription field, called through its route's upstream with the route's
/// timeout and header forwarding. The top-level `plugins:` apply to it;
/// route-level plugins do not. Off when absent. See docs/graphql.md.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphqlConfig {
    /// The endpoint's path; it takes precedence over any REST binding with the
    /// same path.
    #[serde(default = "default_path")]
    pub path: String,
    /// How types and root fields are named: `readable` (`User`, `order`) or
    /// `mesh` (`demo_users_v1__User`, `demo_users_v1_UserService_GetUser`, as
    /// GraphQL Mesh names them).
    #[serde(default)]
    pub naming: GraphqlNaming,
    /// A request message with more fields than this is taken as one `input:`
    /// argument instead of one argument per field.
    #[serde(default = "default_input_threshold")]
    pub input_threshold: usize,
    /// Per-method overrides of where a method appears, by full method name
    /// (`demo.users.v1.UserService.CreateUser`): `query`, `mutation` or
    /// `skip` (not exposed). Unary methods only, except `skip`.
    #[serde(default)]
    pub operations: BTreeMap<String, OperationKind>,
    /// Serve the GraphiQL page to browsers on `GET <path>` (its assets are
    /// built into the binary, under `<path>/graphiql/`). The page holds no
    /// data: what it can show depends on introspection and the plugins.
    #[serde(default = "yes")]
    pub graphiql: bool,
}

/// The naming scheme of generated types and root fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GraphqlNaming {
    /// Types named after the message (`User`), prefixed with the package in
    /// PascalCase when two packages define the same name (`DemoUsersV1User`);
    /// root fields `GetOrder` → `order`, `ListOrders` → `orders`, others in
    /// lowerCamelCase (`createOrder`).
    #[default]
    Readable,
    /// GraphQL Mesh's gRPC source names: types `pkg__Msg` (dots in the
    /// package as `_`), root fields `pkg_Service_Method`.
    Mesh,
}

/// Where a method appears in the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// A field of `Query` (a read: may be retried, may run in parallel).
    Query,
    /// A field of `Mutation` (runs in order, never retried once sent).
    Mutation,
    /// Not exposed over GraphQL.
    Skip,
}

fn yes() -> bool {
    true
}

fn default_path() -> String {
    "/graphql".to_owned()
}

fn default_input_threshold() -> usize {
    8
}

// === impl GraphqlConfig ===

impl Default for GraphqlConfig {
    fn default() -> Self {
        GraphqlConfig {
            path: default_path(),
            naming: GraphqlNaming::default(),
            input_threshold: default_input_threshold(),
            operations: BTreeMap::new(),
            graphiql: true,
        }
    }
}
