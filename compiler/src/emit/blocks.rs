//! What the code emitters share about a network's blocks: which blocks can be one generated
//! class (their [`Layout`]), and what to call the classes.
//!
//! Blocks of one template can differ in structure: a template argument such as the cardinality
//! can change per stage, and `groups g * stride` changes it within a stage, so a block of
//! cardinality 1 has no paths in the `split` form while its neighbours have. An emitter makes one
//! class per [`Kind`] (template and layout), never one per template.
//!
//! Both code emitters read these: the Rust target (`rust.rs`) and the PyTorch target
//! ([`super::pytorch`]).

use crate::graph::{LayerGraph, OpKind, Role};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

/// A class name for a network name: `resnext50_32x4d` → `Resnext50_32x4d`, `resnet50` →
/// `Resnet50` (CamelCase over `_`-separated words; a digit after `_` keeps the `_`).
pub fn type_name(network: &str) -> String {
    let mut out = String::new();
    for (i, part) in network.split('_').filter(|p| !p.is_empty()).enumerate() {
        if i > 0 && part.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('_');
        }
        out.push_str(&camel(part));
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'N');
    }
    match out.as_str() {
        "" => "Network".to_string(),
        "Self" => "SelfNetwork".to_string(),
        _ => out,
    }
}

/// CamelCase of a `_`, `-` or `.` separated name.
pub fn camel(s: &str) -> String {
    s.split(['_', '-', '.'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// Where a node of a block takes an input from, for [`Layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The block's input.
    Outside,
    /// The projection shortcut.
    Shortcut,
    /// The `i`-th node of the layout.
    Node(usize),
}

/// What a generated block class is made of: the roles, kinds and connections of a block's nodes
/// (path 0 standing for every path; the projection shortcut left out, since it is optional).
/// Two blocks with the same layout differ only in channel counts, strides and the number of
/// paths, which the class receives as arguments, so they share one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout(pub Vec<(Role, OpKind, Vec<Source>)>);

/// A block's nodes that a layout describes: all but the shortcut and the paths after path 0.
pub fn layout_nodes(g: &LayerGraph, b: usize) -> Vec<NodeIndex> {
    g.block_nodes(b)
        .filter(|(_, n)| match n.role {
            Role::Downsample => false,
            Role::Path { p, .. } | Role::Slice { p } => p == 0,
            _ => true,
        })
        .map(|(i, _)| i)
        .collect()
}

/// The layout of block `b`.
pub fn layout(g: &LayerGraph, b: usize) -> Layout {
    let nodes = layout_nodes(g, b);
    Layout(
        nodes
            .iter()
            .map(|&n| {
                let node = &g.graph[n];
                let role = match node.role {
                    Role::Path { k, .. } => Role::Path { p: 0, k },
                    Role::Slice { .. } => Role::Slice { p: 0 },
                    r => r,
                };
                if node.role == Role::Merge {
                    // Its inputs are the paths, as many as the block's cardinality.
                    return (node.role, node.op.kind(), Vec::new());
                }
                let sources = g
                    .inputs(n)
                    .into_iter()
                    .enumerate()
                    .map(|(slot, i)| match nodes.iter().position(|&m| m == i) {
                        // The residual's second input is the shortcut, projected or not.
                        _ if node.role == Role::Residual && slot == 1 => Source::Shortcut,
                        Some(pos) => Source::Node(pos),
                        None => Source::Outside,
                    })
                    .collect();
                (role, node.op.kind(), sources)
            })
            .collect(),
    )
}

/// Blocks of one template and one layout: one generated class.
#[derive(Debug, Clone)]
pub struct Kind {
    /// The template's name.
    pub template: String,
    /// What every block of the kind is made of.
    pub layout: Layout,
    /// The block the class is generated from: one with a projection shortcut, if any has one.
    pub rep: usize,
    /// Whether some block of the kind has a projection shortcut.
    pub downsample: bool,
}

/// Whether block `b` has a projection shortcut.
pub fn has_downsample(g: &LayerGraph, b: usize) -> bool {
    g.block_nodes(b).any(|(_, n)| n.role == Role::Downsample)
}

/// The network's block kinds, in order of first use, and the kind of each block.
pub fn kinds(g: &LayerGraph) -> (Vec<Kind>, Vec<usize>) {
    let mut kinds: Vec<Kind> = Vec::new();
    let mut kind_of = Vec::with_capacity(g.blocks.len());
    for (b, info) in g.blocks.iter().enumerate() {
        let template = g.stages[info.stage].template.clone().unwrap_or_default();
        let layout = layout(g, b);
        let k = match kinds
            .iter()
            .position(|k| k.template == template && k.layout == layout)
        {
            Some(k) => k,
            None => {
                kinds.push(Kind {
                    template,
                    layout,
                    rep: b,
                    downsample: false,
                });
                kinds.len() - 1
            }
        };
        if has_downsample(g, b) && !kinds[k].downsample {
            kinds[k].rep = b;
            kinds[k].downsample = true;
        }
        kind_of.push(k);
    }
    (kinds, kind_of)
}

/// The class name of each kind: `{Net}{Template}`, and `{Net}{Template}Layout{n}` for the n-th
/// layout of a template that has several.
pub fn kind_names(net: &str, kinds: &[Kind]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    kinds
        .iter()
        .map(|k| {
            let n = seen.entry(k.template.as_str()).or_insert(0);
            *n += 1;
            let suffix = match camel(&k.template) {
                c if c.is_empty() || c == "Path" => format!("Template{}", camel(&k.template)),
                c => c,
            };
            if *n == 1 {
                format!("{net}{suffix}")
            } else {
                format!("{net}{suffix}Layout{n}")
            }
        })
        .collect()
}
