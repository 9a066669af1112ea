//! The plugin contract in `wit/`: checks that it parses, has the shape the
//! host and the SDKs rely on, and documents every item (issue #4).

use std::collections::BTreeSet;

use wit_parser::{Docs, Resolve, TypeDefKind, WorldItem, WorldKey};

const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");

fn load() -> (Resolve, wit_parser::PackageId) {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_path(WIT_DIR).expect("wit/ parses");
    (resolve, package)
}

/// The names of a world's imported or exported interfaces.
fn interface_names<'a>(
    resolve: &Resolve,
    items: impl IntoIterator<Item = (&'a WorldKey, &'a WorldItem)>,
) -> BTreeSet<String> {
    items
        .into_iter()
        .map(|(key, item)| match (key, item) {
            (WorldKey::Interface(id), WorldItem::Interface { .. }) => {
                resolve.interfaces[*id].name.clone().unwrap_or_default()
            }
            (WorldKey::Name(name), _) => format!("(by name) {name}"),
            (key, _) => format!("unexpected {key:?}"),
        })
        .collect()
}

#[test]
fn the_plugin_world_imports_log_and_config_and_exports_handle() {
    let (resolve, package) = load();
    assert_eq!(
        resolve.packages[package].name.to_string(),
        "hookyard:router@0.1.0"
    );
    let world = resolve
        .select_world(&[package], Some("plugin"))
        .expect("world plugin");
    let world = &resolve.worlds[world];
    // `types` comes in because `handler` uses it; nothing from WASI.
    assert_eq!(
        interface_names(&resolve, &world.imports),
        BTreeSet::from(["types".into(), "log".into(), "config".into()])
    );
    assert_eq!(
        interface_names(&resolve, &world.exports),
        BTreeSet::from(["handler".into()])
    );

    let handler = resolve.packages[package].interfaces["handler"];
    let handle = &resolve.interfaces[handler].functions["handle"];
    assert_eq!(handle.params.len(), 1);
    assert_eq!(handle.params[0].name, "event");
    let Some(wit_parser::Type::Id(result)) = handle.result else {
        panic!("handle returns a result");
    };
    let TypeDefKind::Result(result) = &resolve.types[result].kind else {
        panic!("handle returns a result");
    };
    let named = |ty: Option<wit_parser::Type>| match ty {
        Some(wit_parser::Type::Id(id)) => match &resolve.types[id].kind {
            TypeDefKind::List(wit_parser::Type::Id(inner)) => {
                format!(
                    "list<{}>",
                    resolve.types[*inner].name.clone().unwrap_or_default()
                )
            }
            _ => resolve.types[id].name.clone().unwrap_or_default(),
        },
        other => format!("{other:?}"),
    };
    assert_eq!(named(result.ok), "list<action>");
    assert_eq!(named(result.err), "plugin-error");
}

#[test]
fn the_event_action_and_error_types_have_the_documented_cases() {
    let (resolve, package) = load();
    let types = resolve.packages[package].interfaces["types"];
    let ty = |name: &str| &resolve.types[resolve.interfaces[types].types[name]].kind;
    let TypeDefKind::Record(event) = ty("event") else {
        panic!("event is a record")
    };
    let fields: Vec<_> = event.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        fields,
        [
            "id",
            "source",
            "received-at",
            "method",
            "path",
            "headers",
            "body"
        ]
    );
    let TypeDefKind::Variant(action) = ty("action") else {
        panic!("action is a variant")
    };
    let cases: Vec<_> = action.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cases, ["deliver", "drop"]);
    let TypeDefKind::Variant(error) = ty("plugin-error") else {
        panic!("plugin-error is a variant")
    };
    let cases: Vec<_> = error.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cases, ["rejected", "invalid-input", "internal"]);
}

#[test]
fn every_item_is_documented() {
    let (resolve, package) = load();
    let mut missing = Vec::new();
    let mut need = |what: String, docs: &Docs| {
        if docs.contents.as_deref().is_none_or(|d| d.trim().is_empty()) {
            missing.push(what);
        }
    };
    let pkg = &resolve.packages[package];
    need("package".into(), &pkg.docs);
    for (name, world) in &pkg.worlds {
        need(format!("world {name}"), &resolve.worlds[*world].docs);
    }
    for (iname, id) in &pkg.interfaces {
        let interface = &resolve.interfaces[*id];
        need(format!("interface {iname}"), &interface.docs);
        for (fname, function) in &interface.functions {
            need(format!("{iname}.{fname}"), &function.docs);
        }
        for (tname, tid) in &interface.types {
            let def = &resolve.types[*tid];
            // A `use` is an alias of a type defined (and documented) elsewhere.
            if let TypeDefKind::Type(wit_parser::Type::Id(target)) = def.kind {
                if resolve.types[target].owner != wit_parser::TypeOwner::Interface(*id) {
                    continue;
                }
            }
            need(format!("{iname}.{tname}"), &def.docs);
            match &def.kind {
                TypeDefKind::Record(r) => {
                    for f in &r.fields {
                        need(format!("{iname}.{tname}.{}", f.name), &f.docs);
                    }
                }
                TypeDefKind::Variant(v) => {
                    for c in &v.cases {
                        need(format!("{iname}.{tname}.{}", c.name), &c.docs);
                    }
                }
                TypeDefKind::Enum(e) => {
                    for c in &e.cases {
                        need(format!("{iname}.{tname}.{}", c.name), &c.docs);
                    }
                }
                _ => {}
            }
        }
    }
    assert!(missing.is_empty(), "undocumented in wit/: {missing:?}");
}
