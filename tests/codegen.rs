//! `archc codegen`: snapshots of the Rust that `resnext!` generates, formatted with prettyplease.

use archc::emit::rust::{Names, emit, type_name};

fn generated(rel: &str, set: &[(&str, &str)]) -> String {
    let c = archc_tests::compile(rel, set);
    let names = Names {
        type_name: type_name(&c.model.name),
        vis: quote::quote!(pub),
        origin: format!("`specs/{rel}`"),
    };
    let file: syn::File = syn::parse2(emit(&c, &names)).expect("generated code parses");
    prettyplease::unparse(&file)
}

#[test]
fn codegen_of_the_snapshotted_specs() {
    for (name, rel, set) in archc_tests::SNAPSHOTTED {
        insta::assert_snapshot!(format!("codegen_{name}"), generated(rel, set));
    }
}

#[test]
fn type_names() {
    assert_eq!(type_name("resnext50_32x4d"), "Resnext50_32x4d");
    assert_eq!(type_name("resnet50"), "Resnet50");
    assert_eq!(type_name("wide_resnet50_2"), "WideResnet50_2");
    assert_eq!(type_name("9lives"), "N9lives");
}

mod layouts {
    //! Code generation over specs whose template arguments (cardinality among them) vary per
    //! stage and per block, in all three forms: block structs are keyed by their layout, so
    //! `emit` succeeds for every compilable spec and every stage's element type is defined.

    use archc::emit::rust::{Names, emit};
    use archc::{Overrides, Spec};
    use archc_tests::two_stage::{Shape, spec};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The generated file for a spec, or `None` when the spec itself does not compile.
    pub fn generated(text: &str) -> Option<syn::File> {
        let spec = Spec::from_text("t.arch", text).unwrap_or_else(|f| panic!("{}", f.render()));
        let c = spec.compile("t", &Overrides::default()).ok()?;
        let names = Names {
            type_name: "T".to_string(),
            vis: quote::quote!(pub),
            origin: "a property test".to_string(),
        };
        Some(syn::parse2(emit(&c, &names)).expect("generated code parses"))
    }

    /// Names of the structs and enums a file defines, and the element types of its `Vec` fields.
    fn types(file: &syn::File) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut defined = BTreeSet::new();
        let mut used = BTreeSet::new();
        for item in &file.items {
            match item {
                syn::Item::Struct(s) => {
                    defined.insert(s.ident.to_string());
                    for f in &s.fields {
                        let ty = quote::quote!(#f).to_string();
                        if let Some(rest) = ty.split("Vec <").nth(1) {
                            used.insert(rest.trim_end_matches('>').trim().to_string());
                        }
                    }
                }
                syn::Item::Enum(e) => {
                    defined.insert(e.ident.to_string());
                }
                _ => {}
            }
        }
        (defined, used)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

        #[test]
        fn every_layout_generates(
            form in prop::sample::select(vec!["grouped", "concat", "split"]),
            lead in any::<bool>(),
            tail in any::<bool>(),
            g in [1u64..5, 1u64..5],
            d in [1u64..4, 1u64..4],
            depth in [1u64..3, 1u64..3],
            stride_groups in any::<bool>(),
        ) {
            let text = spec(form, Shape { lead, tail }, g, d, depth, stride_groups);
            let file = generated(&text);
            prop_assert!(file.is_some(), "does not compile:\n{}", text);
            let file = file.expect("checked");
            let (defined, used) = types(&file);
            prop_assert!(!used.is_empty());
            for ty in &used {
                prop_assert!(
                    ty.ends_with("Path") || defined.contains(ty) || ty.starts_with(":: archc_runtime"),
                    "{} is used but not defined", ty
                );
            }
            // Stages whose blocks have different layouts get an enum; others the block struct.
            let mixed = form != "grouped" && stride_groups && g[1] == 1 && depth[1] > 1;
            prop_assert_eq!(defined.contains("TLayer2Block"), mixed, "{}", text);
        }
    }
}
