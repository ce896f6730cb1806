//! The documented JSON Schemas (`docs/schema/`, `bitsfarm schema`) are the ones the binary
//! prints and describe what it writes: a real summary.json (a run with duplicates, faults and a
//! what-if's unchecked expectations) and probe.json (checked in probe_cmd.rs) validate.

use serde_json::Value;

use super::{bitsfarm, code, stderr, stdout, tempdir};

/// Checks `v` against `schema` (the subset of JSON Schema that schemars writes: `$ref` into
/// `$defs`, `type` (one or several), `properties`, `required`, `additionalProperties`, `items`,
/// `prefixItems`, `enum`, `const`, `oneOf`/`anyOf`, `allOf`); every mismatch with its path.
pub(crate) fn validate(
    root: &Value,
    schema: &Value,
    v: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    if schema == &Value::Bool(true) {
        return;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        let target = &root["$defs"][name];
        assert!(!target.is_null(), "unknown $ref {r}");
        validate(root, target, v, path, errors);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(root, s, v, path, errors);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let fits = options.iter().filter(|s| {
                let mut e = Vec::new();
                validate(root, s, v, path, &mut e);
                e.is_empty()
            });
            let n = fits.count();
            if n == 0 || (key == "oneOf" && n > 1) {
                errors.push(format!("{path}: {n} of the {key} options fit {v}"));
            }
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(v)
    {
        errors.push(format!("{path}: {v} not in {values:?}"));
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        errors.push(format!("{path}: {v} is not {c}"));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            _ => false,
        };
        if !types.iter().any(|t| fits(t)) {
            errors.push(format!("{path}: {v} is not {types:?}"));
            return;
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{path}: required key {r} missing"));
                }
            }
        }
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(root, s, x, &format!("{path}.{k}"), errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{path}: unexpected key {k}")),
                    Some(s @ Value::Object(_)) => {
                        validate(root, s, x, &format!("{path}.{k}"), errors)
                    }
                    // A key the schema does not name, where it names others: undocumented.
                    _ if props.is_some() => errors.push(format!("{path}: undocumented key {k}")),
                    _ => {}
                },
            }
        }
    }
    if let Some(items) = v.as_array() {
        let prefix = schema.get("prefixItems").and_then(Value::as_array);
        for (i, x) in items.iter().enumerate() {
            let s = prefix
                .and_then(|p| p.get(i))
                .or_else(|| schema.get("items"));
            if let Some(s) = s {
                validate(root, s, x, &format!("{path}[{i}]"), errors);
            }
        }
    }
}

fn committed(which: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema/");
    serde_json::from_str(&std::fs::read_to_string(format!("{path}{which}.schema.json")).unwrap())
        .unwrap()
}

#[test]
fn the_committed_schemas_are_what_the_binary_prints() {
    for which in ["summary", "probe", "bench"] {
        let o = bitsfarm(&["schema", which]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let printed: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(
            printed,
            committed(which),
            "docs/schema/{which}.schema.json is stale: `bitsfarm schema {which} > docs/schema/{which}.schema.json`"
        );
    }
}

#[test]
fn bench_json_is_what_bench_writes_and_validates_against_the_bench_schema() {
    let schema = committed("bench");
    let dir = tempdir("schema-bench");
    for (tag, only) in [
        ("speed", vec!["--only", "speed"]),
        ("runs", vec!["--only", "runs", "--seeds", "20"]),
    ] {
        let out = dir.join(tag);
        let mut all = vec!["bench", "--json", "-o", out.to_str().unwrap()];
        all.extend(only);
        let o = bitsfarm(&all);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let printed: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let written: Value =
            serde_json::from_slice(&std::fs::read(out.join("bench.json")).unwrap()).unwrap();
        assert_eq!(printed, written, "{tag}: --json prints bench.json");
        assert!(written[tag].is_object(), "{tag}: {written}");
        let mut errors = Vec::new();
        validate(&schema, &schema, &written, "$", &mut errors);
        assert!(errors.is_empty(), "{tag}: {errors:#?}");
        // Not vacuous: a number where an object belongs fails.
        let mut bad = written.clone();
        bad[tag] = Value::from(1);
        let mut errors = Vec::new();
        validate(&schema, &schema, &bad, "$", &mut errors);
        assert!(!errors.is_empty(), "{tag}: a broken bench.json validated");
    }
}

#[test]
fn real_summaries_validate_against_the_summary_schema() {
    let schema = committed("summary");
    let dir = tempdir("schema");
    for (tag, args) in [
        ("crash", vec!["scenario", "crash-after-forward"]),
        (
            "whatif",
            vec![
                "scenario",
                "crash-after-forward",
                "--set",
                "farm.host_id=false",
            ],
        ),
        ("slow", vec!["scenario", "slow-backend"]),
        ("toggle", vec!["scenario", "hostid-toggle"]),
    ] {
        let out = dir.join(tag);
        let mut all = args.clone();
        all.extend(["-o", out.to_str().unwrap(), "-q"]);
        let o = bitsfarm(&all);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        let mut errors = Vec::new();
        validate(&schema, &schema, &v, "$", &mut errors);
        assert!(errors.is_empty(), "{tag}: {errors:#?}");
        // The checker is not vacuous: a summary with a wrong type and an unknown key fails.
        let mut bad = v.clone();
        bad["files"] = Value::String("ten".into());
        bad["rates"]["no_such_rate"] = Value::from(1);
        let mut errors = Vec::new();
        validate(&schema, &schema, &bad, "$", &mut errors);
        assert!(
            errors.iter().any(|e| e.starts_with("$.files")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("no_such_rate")),
            "{errors:?}"
        );
    }
}

#[test]
fn bench_refuses_a_memory_run_smaller_than_the_one_it_compares_with() {
    let dir = tempdir("bench-files");
    for files in ["9999", "0", "ten", "10000001"] {
        let o = bitsfarm(&[
            "bench",
            "--only",
            "memory",
            "--files",
            files,
            "-o",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 2, "--files {files}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("'--files <N>'"),
            "--files {files}: {}",
            stderr(&o)
        );
        assert!(!dir.join("bench.json").exists(), "--files {files}");
    }
}
