//! `demo.users.v1.UserService`: the accounts of the demo shop, in memory.
//!
//! Seeded with users "1".."20" so that demos, gateway tests and benchmarks see the same data on
//! every start; users created at runtime get the next free id and the wall-clock time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::RwLock;
use tonic::{Request, Response, Status};

use crate::errors::{Violation, bad_field, bad_request, not_found};
use crate::paging::Page;
use crate::pb::users::user_service_server::UserService;
use crate::pb::users::{
    BatchGetUsersRequest, BatchGetUsersResponse, CreateUserRequest, GetUserRequest,
    ListUsersRequest, ListUsersResponse, Role, UpdateUserRequest, User,
};
use crate::{canonical_id, timestamp};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
const DOMAIN: &str = "users.demo";
/// Seed user N was created N hours after 2024-01-01T00:00:00Z.
const SEED_EPOCH_SECS: i64 = 1_704_067_200;
/// Number of seeded users; user "1" is the admin.
pub const SEED_USERS: u64 = 20;
/// BatchGetUsers refuses more ids than this, like a real service bounding its fan-out.
const MAX_BATCH: usize = 100;
/// Names of seed users "2".."20"; emails are the lower-cased first name at example.com.
const SEED_NAMES: [&str; 19] = [
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Margaret Hamilton",
    "Dennis Ritchie",
    "Frances Allen",
    "Ken Thompson",
    "Radia Perlman",
    "John McCarthy",
    "Shafi Goldwasser",
    "Tony Hoare",
    "Leslie Lamport",
    "Niklaus Wirth",
    "Adele Goldberg",
    "Claude Shannon",
    "Katherine Johnson",
    "Linus Torvalds",
];
/// Fields `UpdateUser` may change; `id` and `create_time` are immutable.
const UPDATABLE: [&str; 3] = ["name", "email", "role"];

/// In-memory `UserService`. Clones share the same store.
#[derive(Debug, Clone)]
pub struct InMemoryUsers {
    state: Arc<RwLock<State>>,
    /// The `read_mask` paths of the latest `GetUser` call, for tests.
    last_read_mask: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Debug)]
struct State {
    /// Keyed by numeric id so listings come out in id order ("2" before "10").
    users: BTreeMap<u64, User>,
    next_id: u64,
}

impl Default for InMemoryUsers {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryUsers {
    /// A store holding the deterministic seed users "1".."20".
    pub fn new() -> Self {
        let mut users = BTreeMap::new();
        for id in 1..=SEED_USERS {
            users.insert(id, seed_user(id));
        }
        Self {
            state: Arc::new(RwLock::new(State {
                users,
                next_id: SEED_USERS + 1,
            })),
            last_read_mask: Arc::default(),
        }
    }

    /// The `read_mask` paths of the latest `GetUser` call (empty: none sent).
    pub fn last_read_mask(&self) -> Vec<String> {
        self.last_read_mask
            .lock()
            .map(|paths| paths.clone())
            .unwrap_or_default()
    }
}

/// Seed user `id` (1-based): "1" is Ada Lovelace, the only admin.
fn seed_user(id: u64) -> User {
    let (name, role) = if id == 1 {
        ("Ada Lovelace", Role::Admin)
    } else {
        let index = usize::try_from(id - 2).expect("seed ids are small");
        (SEED_NAMES[index], Role::Customer)
    };
    let first = name.split(' ').next().unwrap_or(name).to_lowercase();
    let hours = i64::try_from(id).expect("seed ids are small");
    User {
        id: id.to_string(),
        name: name.to_owned(),
        email: format!("{first}@example.com"),
        role: role as i32,
        create_time: Some(timestamp(SEED_EPOCH_SECS + hours * 3600)),
    }
}

/// NOT_FOUND for `id`, with `ErrorInfo{reason: USER_NOT_FOUND, domain: users.demo}`.
fn user_not_found(id: &str) -> Status {
    not_found(
        format!("user \"{id}\" not found"),
        "USER_NOT_FOUND",
        DOMAIN,
        &[("id", id)],
    )
}

/// `user` with only the fields named in `paths` (all of them when empty);
/// an unknown path is INVALID_ARGUMENT, as AIP-157 asks.
fn masked(user: User, paths: &[String]) -> Result<User, Status> {
    if paths.is_empty() {
        return Ok(user);
    }
    let mut out = User::default();
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "id" => out.id.clone_from(&user.id),
            "name" => out.name.clone_from(&user.name),
            "email" => out.email.clone_from(&user.email),
            "role" => out.role = user.role,
            "create_time" => out.create_time = user.create_time,
            other => {
                return Err(bad_field(
                    &format!("read_mask.paths[{i}]"),
                    format!("unknown field {other:?}"),
                ));
            }
        }
    }
    Ok(out)
}

/// Checks the fields of `user` named in `paths`, collecting one violation per bad field.
///
/// `ROLE_UNSPECIFIED` is fine on create (it means "customer") but not as an explicit update.
fn validate(user: &User, paths: &[&str], allow_unspecified_role: bool) -> Vec<Violation> {
    let mut violations = Vec::new();
    for path in paths {
        let field = format!("user.{path}");
        match *path {
            "name" if user.name.trim().is_empty() => {
                violations.push((field, "must not be empty".into()));
            }
            "email" if !user.email.is_empty() && !user.email.contains('@') => {
                violations.push((field, "must be an email address".into()));
            }
            "role" => match Role::try_from(user.role) {
                Err(_) => violations.push((field, format!("unknown role {}", user.role))),
                Ok(Role::Unspecified) if !allow_unspecified_role => {
                    violations.push((field, "must be set".into()));
                }
                Ok(_) => {}
            },
            _ => {}
        }
    }
    violations
}

#[tonic::async_trait]
impl UserService for InMemoryUsers {
    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let GetUserRequest { id, read_mask } = request.into_inner();
        if id.is_empty() {
            return Err(bad_field("id", "must not be empty"));
        }
        let state = self.state.read().await;
        let user = canonical_id(&id)
            .and_then(|key| state.users.get(&key))
            .cloned()
            .ok_or_else(|| user_not_found(&id))?;
        let paths = read_mask.map(|m| m.paths).unwrap_or_default();
        if let Ok(mut last) = self.last_read_mask.lock() {
            last.clone_from(&paths);
        }
        masked(user, &paths).map(Response::new)
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let req = request.into_inner();
        let role = Role::try_from(req.role)
            .map_err(|_| bad_field("role", format!("unknown role {}", req.role)))?;
        let state = self.state.read().await;
        let matching: Vec<&User> = state
            .users
            .values()
            .filter(|user| role == Role::Unspecified || user.role == role as i32)
            .collect();
        let page = Page::resolve(req.page_size, &req.page_token, matching.len())?;
        Ok(Response::new(ListUsersResponse {
            users: matching[page.start..page.end]
                .iter()
                .map(|user| (*user).clone())
                .collect(),
            next_page_token: page.next_token(matching.len()),
        }))
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let Some(user) = request.into_inner().user else {
            return Err(bad_field("user", "is required"));
        };
        let violations = validate(&user, &UPDATABLE, true);
        if !violations.is_empty() {
            return Err(bad_request(violations));
        }
        let role = match Role::try_from(user.role) {
            Ok(Role::Unspecified) | Err(_) => Role::Customer,
            Ok(role) => role,
        };
        let mut state = self.state.write().await;
        let id = state.next_id;
        state.next_id += 1;
        // Client-supplied id and create_time are ignored: the server owns both.
        let created = User {
            id: id.to_string(),
            name: user.name,
            email: user.email,
            role: role as i32,
            create_time: Some(SystemTime::now().into()),
        };
        state.users.insert(id, created.clone());
        Ok(Response::new(created))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let req = request.into_inner();
        let Some(patch) = req.user else {
            return Err(bad_field("user", "is required"));
        };
        if patch.id.is_empty() {
            return Err(bad_field("user.id", "must not be empty"));
        }
        let mask: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths: Vec<&str> = if mask.is_empty() {
            // No mask: update every field the client set (proto3 cannot tell "set to default"
            // from "unset", so empty strings and ROLE_UNSPECIFIED mean "leave alone").
            UPDATABLE
                .into_iter()
                .filter(|path| match *path {
                    "name" => !patch.name.is_empty(),
                    "email" => !patch.email.is_empty(),
                    _ => patch.role != Role::Unspecified as i32,
                })
                .collect()
        } else {
            mask.iter().map(String::as_str).collect()
        };

        let mut violations = validate(&patch, &paths, false);
        for (i, path) in paths.iter().enumerate() {
            if !UPDATABLE.contains(path) {
                violations.push((
                    format!("update_mask.paths[{i}]"),
                    format!("{path:?} is not an updatable field (name, email, role)"),
                ));
            }
        }
        if !violations.is_empty() {
            return Err(bad_request(violations));
        }

        let mut state = self.state.write().await;
        let Some(user) = canonical_id(&patch.id).and_then(|key| state.users.get_mut(&key)) else {
            return Err(user_not_found(&patch.id));
        };
        for path in paths {
            match path {
                "name" => user.name.clone_from(&patch.name),
                "email" => user.email.clone_from(&patch.email),
                _ => user.role = patch.role,
            }
        }
        Ok(Response::new(user.clone()))
    }

    async fn batch_get_users(
        &self,
        request: Request<BatchGetUsersRequest>,
    ) -> Result<Response<BatchGetUsersResponse>, Status> {
        let ids = request.into_inner().ids;
        if ids.len() > MAX_BATCH {
            return Err(bad_field(
                "ids",
                format!("at most {MAX_BATCH} ids per call"),
            ));
        }
        let state = self.state.read().await;
        let users = ids
            .iter()
            .filter_map(|id| canonical_id(id).and_then(|key| state.users.get(&key)))
            .cloned()
            .collect();
        Ok(Response::new(BatchGetUsersResponse { users }))
    }
}
