//! Changing a scenario from the command line: `farm.host_id=true`, `fault[0].point=ack-ready`.
//!
//! An override sets one key in the scenario's TOML before it is read, so a wrong key or value is
//! reported like a mistake in the file.

use toml::{Table, Value};

use crate::{LoadError, Scenario};

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
    pub fn parse(s: &str) -> Result<Override, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
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

fn segments(key: &str) -> Result<Vec<Seg>, String> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return Err(format!("{key:?}: empty key"));
        }
        out.push(Seg::Key(name.to_owned()));
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let (idx, after) = r
                .split_once(']')
                .ok_or_else(|| format!("{key:?}: unclosed ["))?;
            out.push(Seg::Index(
                idx.parse()
                    .map_err(|_| format!("{key:?}: {idx:?} is not an index"))?,
            ));
            rest = after;
        }
        if !rest.is_empty() {
            return Err(format!("{key:?}: unexpected {rest:?}"));
        }
    }
    Ok(out)
}

fn set(table: &mut Table, segs: &[Seg], value: Value, key: &str) -> Result<(), String> {
    let (first, rest) = segs
        .split_first()
        .ok_or_else(|| format!("{key:?}: empty key"))?;
    let Seg::Key(name) = first else {
        return Err(format!("{key:?}: an index needs a key before it"));
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
                return Err(format!("{key:?}: {name} is not a table"));
            };
            set(t, rest, value, key)
        }
        Seg::Index(i) => {
            let Some(Value::Array(items)) = table.get_mut(name) else {
                return Err(format!("{key:?}: the scenario has no {name} list"));
            };
            let len = items.len();
            let Some(Value::Table(t)) = items.get_mut(*i) else {
                return Err(format!(
                    "{key:?}: {name}[{i}] does not exist ({len} entries)"
                ));
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
        let segs = segments(&o.key).map_err(err)?;
        set(&mut table, &segs, o.value.clone(), &o.key).map_err(err)?;
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
