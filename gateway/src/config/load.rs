//! Reading a config file: `${ENV}` expansion, YAML parsing, typed
//! deserialization, and errors that point at the file, line, column and key.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_saphyr::{Location, Options, PropertySyntax, Spanned};

use super::model::Config;
use super::span::{KeyPath, Node};

/// A parsed config and the source it came from.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub config: Config,
    pub source: Arc<ConfigSource>,
}

/// The text of a config file, kept to locate errors found after parsing
/// (unknown upstreams, services missing from the protos, conflicting routes).
pub struct ConfigSource {
    pub path: PathBuf,
    text: String,
    tree: Option<Spanned<Node>>,
    /// The document's values after `${ENV}` expansion, as JSON: what a
    /// reload compares section by section, and what `/admin/config` shows
    /// (redacted).
    values: serde_json::Value,
}

/// A config error with its place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column; 0 when the error has no position (unreadable file).
    pub line: u64,
    pub column: u64,
    /// The key the error is about, e.g. `routes[0].upstream`.
    pub key: String,
    pub message: String,
    /// The offending line with a caret under the column.
    pub snippet: String,
}

// === impl ConfigSource ===

impl ConfigSource {
    /// The directory relative paths in the config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Resolves a path written in the config relative to the config file.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir().join(p)
        }
    }

    /// The file's text as read (before `${ENV}` expansion).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The document's values after `${ENV}` expansion.
    pub fn values(&self) -> &serde_json::Value {
        &self.values
    }

    /// The value at a JSON pointer (`/routes/0/plugins`); `Null` when absent.
    pub fn value_at(&self, pointer: &str) -> &serde_json::Value {
        self.values
            .pointer(pointer)
            .unwrap_or(&serde_json::Value::Null)
    }

    /// An error about the value at `key`.
    pub fn error_at(&self, key: &KeyPath, message: impl Into<String>) -> ConfigError {
        let location = self.tree.as_ref().map(|t| Node::locate(t, key));
        self.error(location, key.to_string(), message.into())
    }

    fn error(&self, location: Option<Location>, key: String, message: String) -> ConfigError {
        let (line, column) = location.map_or((0, 0), |l| (l.line(), l.column()));
        ConfigError {
            file: self.path.clone(),
            line,
            column,
            key,
            message,
            snippet: snippet(&self.text, line, column),
        }
    }
}

impl fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSource")
            .field("path", &self.path)
            .finish()
    }
}

// === impl ConfigError ===

impl ConfigError {
    /// An error about the file as a whole (it could not be read).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: message.into(),
            snippet: String::new(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": at `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// === loading ===

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read config file: {e}")))?;
    parse(path, text)
}

/// Parses config text; `path` names it in errors and anchors relative paths.
/// Environment variables are interpolated with Docker Compose's rules, in
/// plain and quoted values: `${NAME}` (empty when unset), `${NAME:-default}`,
/// `${NAME:?message}` (an error when unset or empty), `$$` for a literal `$`.
pub fn parse(path: &Path, text: String) -> Result<LoadedConfig, ConfigError> {
    let mut options = Options::default().with_properties(env_properties());
    options.property_syntax = PropertySyntax::DockerCompose;
    let mut source = ConfigSource {
        path: path.to_path_buf(),
        text,
        tree: None,
        values: serde_json::Value::Null,
    };
    let tree = serde_saphyr::from_str_with_options::<Spanned<Node>>(&source.text, options.clone());
    match tree {
        Ok(tree) => source.tree = Some(tree),
        Err(e) => return Err(from_yaml_error(&source, &e)),
    }
    match serde_saphyr::from_str_with_options::<serde_json::Value>(&source.text, options.clone()) {
        Ok(values) => source.values = values,
        Err(e) => return Err(from_yaml_error(&source, &e)),
    }
    match serde_saphyr::from_str_with_options::<Config>(&source.text, options) {
        Ok(config) => Ok(LoadedConfig {
            config,
            source: Arc::new(source),
        }),
        Err(e) => Err(from_yaml_error(&source, &e)),
    }
}

fn env_properties() -> HashMap<String, String> {
    std::env::vars().collect()
}

fn from_yaml_error(source: &ConfigSource, e: &serde_saphyr::Error) -> ConfigError {
    let location = e.location();
    let mut message = strip_position(&e.without_snippet().to_string());
    let key = match (&source.tree, location) {
        (Some(tree), Some(loc)) => {
            let mut path = Node::path_at(tree, loc);
            // A missing field is reported at the start of the mapping that lacks
            // it, which is its first key: the mapping itself is what is wrong.
            if message.starts_with("missing field") {
                path.0.pop();
            }
            path.to_string()
        }
        _ => String::new(),
    };
    // With environment interpolation on, serde-saphyr names an unknown key
    // "an interpolated field"; the key path knows its real name.
    if let Some(rest) = message.strip_prefix("unknown field `an interpolated field`")
        && let Some(name) = key.rsplit('.').next().filter(|n| !n.is_empty())
    {
        message = format!("unknown field `{name}`{rest}");
    }
    source.error(location, key, message)
}

/// serde-saphyr appends " at line N, column M" to its messages; we print the
/// position in front, compiler-style, so the tail is dropped.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn snippet(text: &str, line: u64, column: u64) -> String {
    let Some(source_line) = usize::try_from(line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .and_then(|l| text.lines().nth(l))
    else {
        return String::new();
    };
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    let caret_pad = " ".repeat(usize::try_from(column.saturating_sub(1)).unwrap_or(0));
    format!("{pad} |\n{number} | {source_line}\n{pad} | {caret_pad}^")
}
