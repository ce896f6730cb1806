//! Changing a scenario from the command line: `farm.host_id=true`, `fault[0].point=ack-ready`.
//!
//! An override sets one key in the scenario's TOML before it is read, so a wrong key or value is
//! reported like a mistake in the file.

use toml::{Table, Value};

use crate::{LoadError, Scenario};

/// Why an override cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// No `=`.
    #[error("{0:?} is not KEY=VALUE")]
    NotKeyValue(String),
    /// A key segment is empty (`farm..nodes`).
    #[error("{0:?}: empty key")]
    EmptyKey(String),
    /// A `[` without its `]`.
    #[error("{0:?}: unclosed [")]
    Unclosed(String),
    /// What is in brackets is not a number.
    #[error("{key:?}: {index:?} is not an index")]
    NotAnIndex {
        /// The key.
        key: String,
        /// The text in brackets.
        index: String,
    },
    /// Text after a `]` that is not `.`.
    #[error("{key:?}: unexpected {rest:?}")]
    Unexpected {
        /// The key.
        key: String,
        /// What follows.
        rest: String,
    },
    /// An index with no key before it (`[0].x`).
    #[error("{0:?}: an index needs a key before it")]
    IndexWithoutKey(String),
    /// A key below a value that is not a table.
    #[error("{key:?}: {name} is not a table")]
    NotATable {
        /// The key.
        key: String,
        /// The value that is not a table.
        name: String,
    },
    /// An index into a list the scenario does not have.
    #[error("{key:?}: the scenario has no {name} list")]
    NoList {
        /// The key.
        key: String,
        /// The list.
        name: String,
    },
    /// An index past the list's end.
    #[error("{key:?}: {name}[{index}] does not exist ({len} entries)")]
    NoEntry {
        /// The key.
        key: String,
        /// The list.
        name: String,
        /// The index.
        index: usize,
        /// Entries in the list.
        len: usize,
    },
}

/// One `key=value` override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key with optional indices: `farm.nodes`, `fault[0].restart_after_s`.
    pub key: String,
    /// The value, as TOML (`true`, `3600`, `"by-value"`); a bare word is taken as a string.
    pub value: Value,
}

impl Override {
    /// Reads `key=value`.
    pub fn parse(s: &str) -> Result<Override, OverrideError> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| OverrideError::NotKeyValue(s.to_owned()))?;
        Ok(Override {
            key: key.trim().to_owned(),
            value: parse_value(value.trim()),
        })
    }

    /// `key=value`, as the user would write it.
    pub fn label(&self) -> String {
        format!("{}={}", self.key, render(&self.value))
    }
}

/// A value as written on the command line: TOML if it reads as TOML, else a string.
pub fn parse_value(s: &str) -> Value {
    let doc = format!("v = {s}");
    match doc.parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(s.to_owned())),
        Err(_) => Value::String(s.to_owned()),
    }
}

/// A value as a user would write it (strings without quotes).
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segments(key: &str) -> Result<Vec<Seg>, OverrideError> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return Err(OverrideError::EmptyKey(key.to_owned()));
        }
        out.push(Seg::Key(name.to_owned()));
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let (idx, after) = r
                .split_once(']')
                .ok_or_else(|| OverrideError::Unclosed(key.to_owned()))?;
            out.push(Seg::Index(idx.parse().map_err(|_| {
                OverrideError::NotAnIndex {
                    key: key.to_owned(),
                    index: idx.to_owned(),
                }
            })?));
            rest = after;
        }
        if !rest.is_empty() {
            return Err(OverrideError::Unexpected {
                key: key.to_owned(),
                rest: rest.to_owned(),
            });
        }
    }
    Ok(out)
}

fn set(table: &mut Table, segs: &[Seg], value: Value, key: &str) -> Result<(), OverrideError> {
    let (first, rest) = segs
        .split_first()
        .ok_or_else(|| OverrideError::EmptyKey(key.to_owned()))?;
    let Seg::Key(name) = first else {
        return Err(OverrideError::IndexWithoutKey(key.to_owned()));
    };
    if rest.is_empty() {
        table.insert(name.clone(), value);
        return Ok(());
    }
    match &rest[0] {
        Seg::Key(_) => {
            let entry = table
                .entry(name.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(t) = entry else {
                return Err(OverrideError::NotATable {
                    key: key.to_owned(),
                    name: name.clone(),
                });
            };
            set(t, rest, value, key)
        }
        Seg::Index(i) => {
            let Some(Value::Array(items)) = table.get_mut(name) else {
                return Err(OverrideError::NoList {
                    key: key.to_owned(),
                    name: name.clone(),
                });
            };
            let len = items.len();
            let Some(Value::Table(t)) = items.get_mut(*i) else {
                return Err(OverrideError::NoEntry {
                    key: key.to_owned(),
                    name: name.clone(),
                    index: *i,
                    len,
                });
            };
            set(t, &rest[1..], value, key)
        }
    }
}

/// The scenario `text` with `overrides` applied, loaded and checked. `origin` and
/// `default_name` are as for [`crate::load_str`].
pub fn apply(
    text: &str,
    origin: &str,
    default_name: &str,
    overrides: &[Override],
) -> Result<Scenario, LoadError> {
    if overrides.is_empty() {
        return crate::load_str(text, origin, default_name);
    }
    let err = |message: String| LoadError {
        file: origin.to_owned(),
        line: None,
        key: None,
        message,
    };
    // First make sure the file itself is good, so its errors keep their line numbers.
    crate::load_str(text, origin, default_name)?;
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(e.message().to_owned()))?;
    for o in overrides {
        let segs = segments(&o.key).map_err(|e| err(e.to_string()))?;
        set(&mut table, &segs, o.value.clone(), &o.key).map_err(|e| err(e.to_string()))?;
    }
    let label = format!(
        "{origin} with {}",
        overrides
            .iter()
            .map(Override::label)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rewritten = toml::to_string(&table).map_err(|e| err(e.to_string()))?;
    crate::load_str(&rewritten, &label, default_name).map_err(|mut e| {
        // Lines refer to the rewritten text, which the user never saw: name the key instead.
        e.line = None;
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "[farm]\nnodes = 2\n\n[[fault]]\npoint = \"after-forward\"\naction = \"crash\"\n";

    fn with(sets: &[&str]) -> Result<Scenario, LoadError> {
        let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
        apply(BASE, "b.toml", "b", &o)
    }

    #[test]
    fn sets_keys_tables_and_list_entries() {
        let s = with(&[
            "farm.host_id=true",
            "farm.notification=by-value",
            "fault[0].point=ack-ready",
            "backend.dedupe=true",
            "clients.file_size=4096",
        ])
        .unwrap();
        assert!(s.farm.host_id);
        assert_eq!(s.farm.notification, node::NotificationType::ByValue);
        assert_eq!(s.faults[0].point, Some(probe::FaultPoint::AckReady));
        assert!(s.backend.dedupe);
        assert_eq!(s.clients.file_size, 4096);
        assert_eq!(s.farm.nodes, 2, "untouched keys keep their values");
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let e = with(&["farm.nodez=3"]).unwrap_err();
        assert!(e.message.contains("nodez"), "{e}");
        assert!(e.file.contains("farm.nodez=3"), "{e}");
        let e = with(&["farm.nodes=0"]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("farm.nodes"));
        assert!(
            with(&["fault[3].point=request"])
                .unwrap_err()
                .message
                .contains("does not exist")
        );
        assert!(
            with(&["expect[0]=1"])
                .unwrap_err()
                .message
                .contains("no expect list")
        );
        assert!(Override::parse("novalue").is_err());
        assert!(segments("a[x]").is_err());
    }

    #[test]
    fn values_read_as_toml_or_strings() {
        assert_eq!(parse_value("true"), Value::Boolean(true));
        assert_eq!(parse_value("3600"), Value::Integer(3600));
        assert_eq!(parse_value("by-value"), Value::String("by-value".into()));
        assert_eq!(parse_value("\"quoted\""), Value::String("quoted".into()));
        assert_eq!(
            Override::parse("a.b=by-value").unwrap().label(),
            "a.b=by-value"
        );
    }
}
