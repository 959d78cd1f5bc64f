//! `archc codegen`: snapshots of the Rust that `resnext!` generates, formatted with prettyplease.

use archc::emit::rust::{Names, emit, type_name};
use std::path::Path;

fn generated(rel: &str, set: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../specs")
        .join(rel);
    let overrides = archc::Overrides {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        input: None,
        ..Default::default()
    };
    let c = archc::compile_file(&path, &overrides).unwrap_or_else(|f| panic!("{}", f.render()));
    let names = Names {
        type_name: type_name(&c.model.name),
        vis: quote::quote!(pub),
        origin: format!("`specs/{rel}`"),
    };
    let file: syn::File = syn::parse2(emit(&c, &names)).expect("generated code parses");
    prettyplease::unparse(&file)
}

#[test]
fn codegen_resnet18() {
    insta::assert_snapshot!(generated("resnet/resnet18.arch", &[]));
}

#[test]
fn codegen_resnext29_split_form() {
    insta::assert_snapshot!(generated(
        "cifar/resnext29_8x64d.arch",
        &[("form", "split")]
    ));
}

#[test]
fn type_names() {
    assert_eq!(type_name("resnext50_32x4d"), "Resnext50_32x4d");
    assert_eq!(type_name("resnet50"), "Resnet50");
    assert_eq!(type_name("wide_resnet50_2"), "WideResnet50_2");
    assert_eq!(type_name("9lives"), "N9lives");
}
