//! Loading service descriptions: `.proto` files compiled at start-up with
//! `protox` (pure Rust, no `protoc`), and binary `FileDescriptorSet`s.
//!
//! The pool always contains `google/api/{annotations,http}.proto` and
//! `google/rpc/{status,error_details}.proto` (embedded in the binary), so
//! services can import the HTTP annotations without a googleapis checkout and
//! upstream error details render as JSON.

use std::path::{Path, PathBuf};

use miette::Diagnostic;
use prost_reflect::DescriptorPool;
use protox::Compiler;
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

/// Files embedded in the binary, importable from any `.proto`.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "google/api/annotations.proto",
        include_str!("../../../proto/google/api/annotations.proto"),
    ),
    (
        "google/api/http.proto",
        include_str!("../../../proto/google/api/http.proto"),
    ),
    (
        "google/rpc/status.proto",
        include_str!("../../../proto/google/rpc/status.proto"),
    ),
    (
        "google/rpc/error_details.proto",
        include_str!("../../../proto/google/rpc/error_details.proto"),
    ),
];

/// A `.proto` or descriptor-set problem, located where possible.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    /// A compile error; `location` is `file:line:column` when known.
    #[error("{location}: {message}")]
    Compile { location: String, message: String },
    #[error("{path}: not a valid FileDescriptorSet: {message}")]
    DescriptorSet { path: PathBuf, message: String },
}

/// Where descriptions come from, paths already resolved.
#[derive(Clone, Debug, Default)]
pub struct ProtoSources {
    /// Directories (import roots whose `.proto` files are all compiled), `.proto`
    /// files, or descriptor-set files.
    pub sources: Vec<PathBuf>,
    /// Extra import roots.
    pub includes: Vec<PathBuf>,
}

struct EmbeddedResolver;

// === impl EmbeddedResolver ===

impl FileResolver for EmbeddedResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, source)| File::from_source(n, source))
            .unwrap_or_else(|| Err(protox::Error::file_not_found(name)))
    }
}

// === loading ===

/// Compiles and merges every source into one descriptor pool.
pub fn load(sources: &ProtoSources) -> Result<DescriptorPool, ProtoError> {
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut sets: Vec<PathBuf> = Vec::new();
    for source in &sources.sources {
        if source.is_dir() {
            roots.push(source.clone());
            files.extend(proto_files_under(source)?);
        } else if is_descriptor_set(source) {
            sets.push(source.clone());
        } else if source.is_file() {
            // A lone file imports relative to its own directory unless an
            // include root already contains it.
            let included = roots
                .iter()
                .chain(&sources.includes)
                .any(|r| source.starts_with(r));
            if !included && let Some(parent) = source.parent() {
                roots.push(parent.to_path_buf());
            }
            files.push(source.clone());
        } else {
            return Err(ProtoError::Io {
                path: source.clone(),
                message: "no such file or directory".into(),
            });
        }
    }
    roots.extend(sources.includes.iter().cloned());

    let mut compiler = Compiler::with_file_resolver(resolver(&roots));
    compiler.include_imports(true).include_source_info(true);
    for (name, _) in EMBEDDED {
        compiler.open_file(name).map_err(compile_error)?;
    }
    for file in &files {
        compiler.open_file(file).map_err(compile_error)?;
    }
    // The pool (not `file_descriptor_set()`) keeps custom options such as
    // `google.api.http`; prost-types would drop them.
    let mut pool = compiler.descriptor_pool();
    for set in &sets {
        let bytes = std::fs::read(set).map_err(|e| ProtoError::Io {
            path: set.clone(),
            message: e.to_string(),
        })?;
        pool.decode_file_descriptor_set(bytes.as_slice())
            .map_err(|e| ProtoError::DescriptorSet {
                path: set.clone(),
                message: e.to_string(),
            })?;
    }
    Ok(pool)
}

fn resolver(roots: &[PathBuf]) -> ChainFileResolver {
    let mut chain = ChainFileResolver::new();
    for root in roots {
        chain.add(IncludeFileResolver::new(root.clone()));
    }
    chain.add(EmbeddedResolver);
    chain.add(GoogleFileResolver::new());
    chain
}

fn is_descriptor_set(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pb" | "binpb" | "desc" | "protoset" | "fds")
    )
}

/// Every `.proto` file below `dir`, sorted so compile order (and any error) is stable.
fn proto_files_under(dir: &Path) -> Result<Vec<PathBuf>, ProtoError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| ProtoError::Io {
            path: d.clone(),
            message: e.to_string(),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Turns protox's diagnostic into `file:line:column: message`.
fn compile_error(err: protox::Error) -> ProtoError {
    let message = err.to_string();
    let file = err.file().unwrap_or("<proto>").to_owned();
    let position = err
        .labels()
        .and_then(|mut labels| labels.next())
        .and_then(|label| {
            let source = err.source_code()?;
            let contents = source.read_span(label.inner(), 0, 0).ok()?;
            Some((contents.line() + 1, contents.column() + 1))
        });
    let location = match position {
        Some((line, column)) => format!("{file}:{line}:{column}"),
        None => file,
    };
    ProtoError::Compile { location, message }
}

/// The pool of `gateway/tests/protos/<file>`, compiled once per test
/// process (unit tests of the code that renders messages).
#[cfg(test)]
pub(crate) fn test_pool(file: &str) -> DescriptorPool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static POOLS: OnceLock<Mutex<HashMap<String, DescriptorPool>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    pools
        .entry(file.to_owned())
        .or_insert_with(|| {
            let path =
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos")).join(file);
            load(&ProtoSources {
                sources: vec![path],
                includes: Vec::new(),
            })
            .unwrap_or_else(|e| panic!("{file}: {e}"))
        })
        .clone()
}

#[cfg(test)]
mod tests;
