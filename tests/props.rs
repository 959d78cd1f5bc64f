//! Property tests: the pipeline never panics on mangled input, the three block forms always cost
//! the same, and costs grow with width and depth.

use archc::{Overrides, Spec};
use proptest::prelude::*;

/// A small ResNeXt with cardinality, width and depth as parameters.
fn spec(c: u64, d: u64, depth: u64, out: u64, form: &str) -> String {
    format!(
        r#"
network t {{
  input 3x32x32
  classes 10
  param C = {c}
  param d = {d}
  form {form}
  stem {{ conv 3x3 -> 16 }}
  block bottleneck(width, out) {{
    conv 1x1 -> width
    conv 3x3/stride -> width, groups C
    conv 1x1 -> out
  }}
  stages bottleneck(width = C * d, out = {out}) {{
    s1: depth {depth}
    s2: depth {depth}, stride 2
  }}
  head {{ avgpool; fc -> classes }}
}}
"#
    )
}

fn costs(text: &str) -> archc::Cost {
    let s = Spec::from_text("t.arch", text).unwrap_or_else(|f| panic!("{}", f.render()));
    s.compile("t", &Overrides::default())
        .unwrap_or_else(|f| panic!("{}", f.render()))
        .report
        .total
}

/// The text of every shipped spec.
fn shipped() -> Vec<String> {
    archc_tests::shipped()
        .iter()
        .map(|rel| std::fs::read_to_string(archc_tests::specs_dir().join(rel)).unwrap())
        .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(a, n)| Edit::Delete(a, n)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "{",
                "}",
                "(",
                ")",
                "->",
                "x",
                "/",
                "0",
                "99999999999999999999",
                "*",
                "=",
                ",",
                "conv 3x3 -> 0",
                "groups 0",
                "stride 0",
                "-",
                "extends t",
                "import \"\"",
                "\u{e9}",
                "param C = C",
                "depth 100000",
                " pad 9",
                "3x",
                "block",
                "1.5M",
            ])
            .prop_map(str::to_string)
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Edit::Replace(a, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match e {
            Edit::Delete(a, n) => {
                let a = a % len;
                let b = (a + n).min(chars.len());
                if a < b {
                    chars.drain(a..b);
                }
            }
            Edit::Insert(a, s) => {
                let a = a % (chars.len() + 1);
                chars.splice(a..a, s.chars());
            }
            Edit::Replace(a, c) => {
                if !chars.is_empty() {
                    let a = a % chars.len();
                    chars[a] = *c;
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// Every diagnostic has a stable code; every span is inside its file and on character
/// boundaries, and the rendering names the primary span's `file:line:col`.
fn located(ds: &[archc::Diagnostic], sources: &archc::SourceMap) -> Result<(), TestCaseError> {
    for d in ds {
        prop_assert!(d.code.starts_with("archc::"), "code {}", d.code);
        let spans = d.primary.iter().chain(&d.secondary).map(|(s, _)| *s);
        for span in spans {
            let text = &sources.file(span.file).text;
            let (a, b) = (span.start as usize, span.end as usize);
            prop_assert!(
                a <= b && b <= text.len(),
                "{}: span {a}..{b} of {}",
                d.code,
                text.len()
            );
            prop_assert!(text.is_char_boundary(a) && text.is_char_boundary(b));
        }
        if let Some(at) = d.location(sources) {
            prop_assert!(d.render(sources).contains(&at), "{} not rendered", at);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Mangled specs produce diagnostics, never a panic; every diagnostic has a stable code,
    /// and every span it has lies inside its file, on character boundaries, and is rendered
    /// with that file's `name:line:col`.
    #[test]
    fn mangled_specs_never_panic(which in 0usize..64, edits in prop::collection::vec(edit(), 1..4)) {
        let specs = shipped();
        let text = apply(&specs[which % specs.len()], &edits);
        match Spec::from_text("mangled.arch", &text) {
            Err(f) => located(&f.diagnostics, &f.sources)?,
            Ok(spec) => {
                for n in spec.networks() {
                    match spec.compile(n, &Overrides::default()) {
                        Err(f) => located(&f.diagnostics, &f.sources)?,
                        Ok(c) => located(&c.violations(), &spec.sources)?,
                    }
                }
            }
        }
    }

    /// Paper Fig. 3: the grouped, early-concatenation and split forms have identical parameter,
    /// buffer and multiply-add totals.
    #[test]
    fn forms_cost_the_same(c in 1u64..9, d in 1u64..9, depth in 1u64..3, out in prop::sample::select(vec![16u64, 32, 64])) {
        let g = costs(&spec(c, d, depth, out, "grouped"));
        for form in ["concat", "split"] {
            let x = costs(&spec(c, d, depth, out, form));
            prop_assert_eq!((x.params, x.buffers, x.macs), (g.params, g.buffers, g.macs), "{}", form);
        }
    }

    /// Wider paths and deeper stages cost strictly more.
    #[test]
    fn costs_grow_with_width_and_depth(c in 1u64..9, d in 1u64..16, depth in 1u64..4) {
        let base = costs(&spec(c, d, depth, 32, "grouped"));
        let wider = costs(&spec(c, d + 1, depth, 32, "grouped"));
        let deeper = costs(&spec(c, d, depth + 1, 32, "grouped"));
        prop_assert!(wider.params > base.params && wider.macs > base.macs);
        prop_assert!(deeper.params > base.params && deeper.macs > base.macs);
    }

    /// A block's grouped 3×3 has C·d·d·9 weights: check the closed form of paper Section 3.3
    /// (with BN and the projection shortcut added) on the first block of stage 1.
    #[test]
    fn block_params_match_closed_form(c in 1u64..33, d in 1u64..17) {
        let text = spec(c, d, 1, 64, "grouped");
        let s = Spec::from_text("t.arch", &text).unwrap();
        let net = s.compile("t", &Overrides::default()).unwrap();
        let w = c * d;
        let block: u64 = net.report.layers.iter()
            .filter(|l| l.path.starts_with("layer1.0."))
            .map(|l| l.cost.params)
            .sum();
        let closed = 16 * w + 2 * w + w * d * 9 + 2 * w + w * 64 + 2 * 64 + 16 * 64 + 2 * 64;
        prop_assert_eq!(block, closed);
    }
}
