//! GraphQL names for proto types and methods, in the two schemes of
//! `graphql.naming` (docs/graphql.md, "Names").

use std::collections::{BTreeMap, HashMap};

use prost_reflect::MethodDescriptor;

use crate::config::graphql::GraphqlNaming;

/// The GraphQL name of every emitted message and enum, decided at once so
/// that collisions can be seen.
pub struct Names {
    naming: GraphqlNaming,
    types: HashMap<String, String>,
}

// === impl Names ===

impl Names {
    /// Names for `types`, given as (full name, package) pairs.
    pub fn new<'a>(
        naming: GraphqlNaming,
        types: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Names {
        let mut types: Vec<(&str, &str)> = types.into_iter().collect();
        types.sort_unstable();
        types.dedup();
        let mut out = HashMap::with_capacity(types.len());
        match naming {
            GraphqlNaming::Mesh => {
                for (full, package) in types {
                    out.insert(full.to_owned(), mesh_type(full, package));
                }
            }
            GraphqlNaming::Readable => readable_types(&types, &mut out),
        }
        Names { naming, types: out }
    }

    /// The name of the message or enum `full_name` (its full proto name with
    /// `_` for `.` if it was not given to [`Names::new`]).
    pub fn of(&self, full_name: &str) -> String {
        self.types
            .get(full_name)
            .cloned()
            .unwrap_or_else(|| full_name.replace('.', "_"))
    }

    /// The input type standing for the output type `name`.
    pub fn input(&self, name: &str) -> String {
        match self.naming {
            GraphqlNaming::Readable => format!("{name}Input"),
            GraphqlNaming::Mesh => format!("{name}_Input"),
        }
    }

    /// A type derived from `base` for its part `part` (a oneof, a member).
    pub fn join(&self, base: &str, part: &str) -> String {
        match self.naming {
            GraphqlNaming::Readable => format!("{base}{}", pascal(part)),
            GraphqlNaming::Mesh => format!("{base}_{part}"),
        }
    }

    /// The root field a method prefers: readable `GetOrder` → `order`,
    /// `ListOrders` → `orders`, others lowerCamelCase; mesh
    /// `pkg_Service_Method`.
    pub fn root_field(&self, method: &MethodDescriptor) -> String {
        match self.naming {
            GraphqlNaming::Mesh => self.qualified_root_field(method),
            GraphqlNaming::Readable => {
                let name = method.name();
                let stripped = ["Get", "List"].iter().find_map(|prefix| {
                    name.strip_prefix(prefix)
                        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
                });
                lower_first(stripped.unwrap_or(name))
            }
        }
    }

    /// The root field of a method whose preferred name is taken by another
    /// method: readable `userServiceGetUser`; mesh as always.
    pub fn qualified_root_field(&self, method: &MethodDescriptor) -> String {
        let service = method.parent_service();
        match self.naming {
            GraphqlNaming::Readable => {
                format!("{}{}", lower_first(service.name()), method.name())
            }
            GraphqlNaming::Mesh => format!(
                "{}_{}_{}",
                service.package_name().replace('.', "_"),
                service.name(),
                method.name()
            )
            .trim_start_matches('_')
            .to_owned(),
        }
    }
}

/// Readable names: the name inside the package (nested names joined), with
/// the package in PascalCase in front when two packages share it, and the
/// full name with `_` when even that collides.
fn readable_types(types: &[(&str, &str)], out: &mut HashMap<String, String>) {
    let local = |full: &str, package: &str| -> String {
        let inner = if package.is_empty() {
            full
        } else {
            full.strip_prefix(package)
                .and_then(|r| r.strip_prefix('.'))
                .unwrap_or(full)
        };
        inner.replace('.', "")
    };
    let mut by_name: BTreeMap<String, Vec<(&str, &str)>> = BTreeMap::new();
    for &(full, package) in types {
        by_name
            .entry(local(full, package))
            .or_default()
            .push((full, package));
    }
    let mut taken: HashMap<String, usize> = HashMap::new();
    let mut chosen = Vec::with_capacity(types.len());
    for (name, group) in by_name {
        for (full, package) in &group {
            let name = if group.len() == 1 {
                name.clone()
            } else {
                format!("{}{name}", pascal(package))
            };
            *taken.entry(name.clone()).or_default() += 1;
            chosen.push((full.to_string(), name));
        }
    }
    for (full, name) in chosen {
        let name = if taken.get(&name).copied().unwrap_or(0) > 1 {
            full.replace('.', "_")
        } else {
            name
        };
        out.insert(full, name);
    }
}

fn mesh_type(full: &str, package: &str) -> String {
    if package.is_empty() {
        return full.replace('.', "_");
    }
    let inner = full
        .strip_prefix(package)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or(full);
    format!("{}__{}", package.replace('.', "_"), inner.replace('.', "_"))
}

/// `demo.users_v1` → `DemoUsersV1`.
pub fn pascal(s: &str) -> String {
    s.split(['.', '_'])
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `payment_method` → `paymentMethod` (protobuf's JSON name rule).
pub fn lower_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_names_prefix_the_package_on_collision() {
        let names = Names::new(
            GraphqlNaming::Readable,
            [
                ("a.v1.User", "a.v1"),
                ("b.v1.User", "b.v1"),
                ("a.v1.Order", "a.v1"),
                ("a.v1.Order.Item", "a.v1"),
            ],
        );
        assert_eq!(names.of("a.v1.User"), "AV1User");
        assert_eq!(names.of("b.v1.User"), "BV1User");
        assert_eq!(names.of("a.v1.Order"), "Order");
        assert_eq!(names.of("a.v1.Order.Item"), "OrderItem");
        assert_eq!(names.input("Order"), "OrderInput");
        assert_eq!(names.join("Shape", "kind_of"), "ShapeKindOf");
    }

    #[test]
    fn mesh_names_keep_the_package() {
        let names = Names::new(
            GraphqlNaming::Mesh,
            [("demo.users.v1.User", "demo.users.v1")],
        );
        assert_eq!(names.of("demo.users.v1.User"), "demo_users_v1__User");
        assert_eq!(
            names.input("demo_users_v1__User"),
            "demo_users_v1__User_Input"
        );
    }

    #[test]
    fn case_helpers() {
        assert_eq!(pascal("demo.users.v1"), "DemoUsersV1");
        assert_eq!(lower_camel("payment_method"), "paymentMethod");
        assert_eq!(lower_first("BatchGetUsers"), "batchGetUsers");
    }
}
