//! `${NAME}` and `${NAME:-default}` inside string values of the parsed TOML.

/// An unset variable without a default.
#[derive(Debug)]
pub(super) struct MissingVar {
    /// Dotted key path where it was used.
    pub(super) key: String,
    /// The variable's name.
    pub(super) var: String,
}

/// Replaces every `${NAME}` / `${NAME:-default}` in string values, in place.
/// Returns the key paths whose value came from a `:-default` (development
/// defaults the router warns about at start). `$${` stays a literal `${`.
pub(super) fn interpolate(
    value: &mut toml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, MissingVar> {
    let mut defaults = Vec::new();
    walk(value, String::new(), lookup, &mut defaults)?;
    Ok(defaults)
}

fn walk(
    value: &mut toml::Value,
    key: String,
    lookup: &dyn Fn(&str) -> Option<String>,
    defaults: &mut Vec<String>,
) -> Result<(), MissingVar> {
    match value {
        toml::Value::String(s) => {
            let (out, used_default) = expand(s, &key, lookup)?;
            if used_default {
                defaults.push(key);
            }
            *s = out;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{key}[{i}]"), lookup, defaults)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, item) in table.iter_mut() {
                let child = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                walk(item, child, lookup, defaults)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands one string; the bool says whether any `:-default` was used.
fn expand(
    s: &str,
    key: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, bool), MissingVar> {
    let mut out = String::with_capacity(s.len());
    let mut used_default = false;
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            // `$${` is an escaped literal `${`.
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            // No closing brace: not a reference, keep the text as written.
            out.push_str(&rest[pos..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => {
                used_default = true;
                out.push_str(d);
            }
            (None, None) => {
                return Err(MissingVar {
                    key: key.to_string(),
                    var: name.to_string(),
                })
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, used_default))
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_string())
    }

    #[test]
    fn expands_set_default_and_escaped() {
        assert_eq!(
            expand("a${SET}b", "k", &env).unwrap(),
            ("avalueb".into(), false)
        );
        assert_eq!(
            expand("${UNSET:-dev}", "k", &env).unwrap(),
            ("dev".into(), true)
        );
        assert_eq!(
            expand("${SET:-dev}", "k", &env).unwrap(),
            ("value".into(), false)
        );
        assert_eq!(
            expand("$${SET}", "k", &env).unwrap(),
            ("${SET}".into(), false)
        );
        assert_eq!(
            expand("no ref", "k", &env).unwrap(),
            ("no ref".into(), false)
        );
    }

    #[test]
    fn unset_without_default_names_key_and_var() {
        let err = expand("${UNSET}", "sources.x.secrets[0]", &env).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.var.as_str()),
            ("sources.x.secrets[0]", "UNSET")
        );
    }
}
