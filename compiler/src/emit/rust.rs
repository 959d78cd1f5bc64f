//! Code generation: a compiled network as Rust source for `archc-runtime` (tch), used by the
//! `resnext!` proc-macro and by `archc codegen`.
//!
//! The generated code is one public struct for the network and, per block template, one struct
//! for its blocks (plus one for its paths in the `concat` and `split` forms). Fields are typed
//! tch layers named after torchvision's modules (`conv1`, `bn1`, `layer2: Vec<Block>`,
//! `downsample: Option<(Conv2D, BatchNorm)>`, `fc`), so the variables carry torchvision's
//! `state_dict` names, as [`archc-runtime`'s `Network`] does. Each struct implements
//! `tch::nn::ModuleT`. Associated constants carry the compiler's figures.
//!
//! The generated code names only `::archc_runtime::__private::…`, so it compiles in any crate
//! that depends on `archc-runtime`, whatever else it depends on.
//!
//! [`archc-runtime`'s `Network`]: https://docs.rs/archc-runtime

use crate::Compiled;
use crate::graph::{LayerGraph, Node, Op};
use petgraph::graph::NodeIndex;
use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};
use std::collections::BTreeMap;

/// What to call the generated items.
#[derive(Debug, Clone)]
pub struct Names {
    /// The network struct's name (`ResNeXt50`).
    pub type_name: String,
    /// Its visibility, as tokens (`pub`, `pub(crate)`, or nothing).
    pub vis: TokenStream,
    /// Where the spec came from, for the doc comment (`specs/x.arch`, `inline spec`).
    pub origin: String,
}

fn private() -> TokenStream {
    quote!(::archc_runtime::__private)
}

fn lit_i(v: u64) -> Literal {
    Literal::i64_unsuffixed(v as i64)
}

/// A struct name for a network name: `resnext50_32x4d` → `Resnext50_32x4d`, `resnet50` →
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

fn camel(s: &str) -> String {
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

/// `ConvSpec { .. }` literal for a conv node.
fn conv_spec(g: &LayerGraph, n: NodeIndex) -> TokenStream {
    let p = private();
    let Op::Conv {
        out,
        kernel,
        stride,
        pad,
        groups,
        bias,
    } = g.graph[n].op
    else {
        unreachable!("conv_spec of a conv node");
    };
    let cin = lit_i(g.input_shape(n).c);
    let (out, kh, kw, stride, ph, pw, groups) = (
        lit_i(out),
        lit_i(kernel.0),
        lit_i(kernel.1),
        lit_i(stride),
        lit_i(pad.0),
        lit_i(pad.1),
        lit_i(groups),
    );
    quote!(#p::ConvSpec { cin: #cin, cout: #out, kernel: [#kh, #kw], stride: #stride, pad: [#ph, #pw], groups: #groups, bias: #bias })
}

/// A field of a generated struct.
struct Field {
    name: Ident,
}

/// Statements computing a sequence of nodes; `var` maps computed nodes to expressions.
struct Body {
    stmts: Vec<TokenStream>,
    var: BTreeMap<NodeIndex, TokenStream>,
}

impl Body {
    fn new() -> Body {
        Body {
            stmts: Vec::new(),
            var: BTreeMap::new(),
        }
    }

    fn input(&self, g: &LayerGraph, n: NodeIndex, k: usize) -> TokenStream {
        let i = g.inputs(n)[k];
        self.var.get(&i).cloned().unwrap_or_else(|| {
            panic!(
                "codegen: input {} of {} not computed",
                g.graph[i].path, g.graph[n].path
            )
        })
    }

    /// Emits `let vN = <expr>;` for a plain node (conv, bn, relu, pools, fc, add).
    fn plain(&mut self, g: &LayerGraph, n: NodeIndex, field: Option<&Ident>) {
        let v = format_ident!("v{}", n.index());
        let x = || self.input(g, n, 0);
        let expr = match g.graph[n].op {
            Op::Conv { .. } | Op::Linear { .. } if field.is_none() => {
                unreachable!("param node without field")
            }
            Op::Conv { .. } => {
                let (x, f) = (x(), field.expect("checked"));
                quote!(#x.apply(&self.#f))
            }
            Op::Linear { .. } => {
                let (x, f) = (x(), field.expect("checked"));
                quote!(#x.flatten(1, -1).apply(&self.#f))
            }
            Op::BatchNorm => {
                let (x, f) = (x(), field.expect("bn has a field"));
                quote!(#x.apply_t(&self.#f, train))
            }
            Op::Relu => {
                let x = x();
                quote!(#x.relu())
            }
            Op::MaxPool {
                kernel,
                stride,
                pad,
            } => {
                let x = x();
                let (kh, kw, s, ph, pw) = (
                    lit_i(kernel.0),
                    lit_i(kernel.1),
                    lit_i(stride),
                    lit_i(pad.0),
                    lit_i(pad.1),
                );
                quote!(#x.max_pool2d([#kh, #kw], [#s, #s], [#ph, #pw], [1, 1], false))
            }
            Op::GlobalAvgPool => {
                let x = x();
                quote!(#x.adaptive_avg_pool2d([1, 1]))
            }
            Op::Add => {
                let ins: Vec<TokenStream> = (0..g.inputs(n).len())
                    .map(|k| self.input(g, n, k))
                    .collect();
                quote!(#(&#ins)+*)
            }
            Op::Concat | Op::Slice { .. } | Op::Input { .. } => {
                unreachable!("handled by the caller")
            }
        };
        self.stmts.push(quote!(let #v = #expr;));
        self.var.insert(n, quote!(#v));
    }
}

/// The code of one block template, derived from a representative block's nodes.
struct Template {
    block_ty: Ident,
    items: TokenStream,
    /// Conv and bn fields of the block itself, in order.
    convs: Vec<Field>,
    bns: Vec<Field>,
    /// Conv and bn fields of a path (relative to `paths.0.`).
    path_convs: Vec<Field>,
    path_bns: Vec<Field>,
}

fn rel<'a>(node: &'a Node, block: &str) -> &'a str {
    node.path
        .strip_prefix(block)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(&node.path)
}

fn template(g: &LayerGraph, net_ty: &str, name: &str, rep: usize) -> Template {
    let p = private();
    let block_path = &g.blocks[rep].path;
    let nodes: Vec<NodeIndex> = g
        .nodes()
        .filter(|(_, n)| n.block == Some(rep))
        .map(|(i, _)| i)
        .collect();
    let in_block = |i: NodeIndex| g.graph[i].block == Some(rep);
    let block_input = nodes
        .iter()
        .flat_map(|&n| g.inputs(n))
        .find(|&i| !in_block(i))
        .expect("a block has an input");
    let suffix = match camel(name) {
        c if c.is_empty() || c == "Path" => format!("Template{}", camel(name)),
        c => c,
    };
    let block_ty = format_ident!("{}{}", net_ty, suffix);
    let is_path = |i: NodeIndex| rel(&g.graph[i], block_path).starts_with("paths.");
    let path_index = |i: NodeIndex| -> Option<u64> {
        rel(&g.graph[i], block_path)
            .strip_prefix("paths.")?
            .split('.')
            .next()?
            .parse()
            .ok()
    };
    let mut body = Body::new();
    body.var.insert(block_input, quote!((*xs)));
    let (mut convs, mut bns) = (Vec::new(), Vec::new());
    let (mut path_convs, mut path_bns) = (Vec::new(), Vec::new());
    let mut path_body = Body::new();
    let mut path_ty = None;
    let mut has_downsample = false;
    let mut path_out = None; // the last node of path 0
    for &n in &nodes {
        let node = &g.graph[n];
        let r = rel(node, block_path);
        if is_path(n) {
            let index = path_index(n).unwrap_or(0);
            if index != 0 {
                continue;
            }
            let leaf = r.splitn(3, '.').nth(2).unwrap_or(r);
            if path_ty.is_none() {
                path_ty = Some(format_ident!("{}Path", block_ty));
                // The group's input: the input of the first path node.
                let group_in = g.inputs(n)[0];
                path_body.var.insert(group_in, quote!((*xs)));
                let outer_in = body.input(g, n, 0);
                body.stmts.push(quote!(
                    let parts = self.paths.len() as i64;
                    let outs: ::std::vec::Vec<#p::Tensor> = self.paths.iter().enumerate()
                        .map(|(i, path)| path.forward_path(&#outer_in, i as i64, parts, train))
                        .collect();
                ));
            }
            match node.op {
                Op::Slice { .. } => {
                    let x = path_body.input(g, n, 0);
                    let v = format_ident!("v{}", n.index());
                    path_body.stmts.push(quote!(
                        let len = #x.size()[1] / parts;
                        let #v = #x.narrow(1, index * len, len);
                    ));
                    path_body.var.insert(n, quote!(#v));
                }
                Op::Conv { .. } => {
                    let f = format_ident!("{}", leaf);
                    path_body.plain(g, n, Some(&f));
                    path_convs.push(Field { name: f });
                }
                Op::BatchNorm => {
                    let f = format_ident!("{}", leaf);
                    path_body.plain(g, n, Some(&f));
                    path_bns.push(Field { name: f });
                }
                _ => path_body.plain(g, n, None),
            }
            path_out = Some(n);
            continue;
        }
        match (node.op, r) {
            (Op::Conv { .. }, "downsample.0") => {
                has_downsample = true;
            }
            (Op::BatchNorm, "downsample.1") => {
                let v = format_ident!("v{}", n.index());
                body.stmts.push(quote!(
                    let #v = match &self.downsample {
                        ::core::option::Option::Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
                        ::core::option::Option::None => xs.shallow_clone(),
                    };
                ));
                body.var.insert(n, quote!(#v));
            }
            (Op::Concat, _) | (Op::Add, _) if g.inputs(n).iter().any(|&i| is_path(i)) => {
                let v = format_ident!("v{}", n.index());
                let expr = if node.op == Op::Concat {
                    quote!(#p::Tensor::cat(&outs, 1))
                } else {
                    quote!(
                        outs[1..]
                            .iter()
                            .fold(outs[0].shallow_clone(), |acc, t| acc + t)
                    )
                };
                body.stmts.push(quote!(let #v = #expr;));
                body.var.insert(n, quote!(#v));
            }
            (Op::Add, _) => {
                // The residual addition: the branch plus the shortcut (identity or projection).
                let h = body.input(g, n, 0);
                // An identity shortcut is the block's input itself.
                let s = body.input(g, n, 1);
                let v = format_ident!("v{}", n.index());
                body.stmts.push(quote!(let #v = &#h + &#s;));
                body.var.insert(n, quote!(#v));
            }
            (Op::Conv { .. }, _) => {
                let f = format_ident!("{}", r);
                body.plain(g, n, Some(&f));
                convs.push(Field { name: f });
            }
            (Op::BatchNorm, _) => {
                let f = format_ident!("{}", r);
                body.plain(g, n, Some(&f));
                bns.push(Field { name: f });
            }
            _ => body.plain(g, n, None),
        }
    }
    let out = body.var[nodes.last().expect("a block has nodes")].clone();
    let stmts = &body.stmts;
    let conv_names: Vec<&Ident> = convs.iter().map(|f| &f.name).collect();
    let bn_names: Vec<&Ident> = bns.iter().map(|f| &f.name).collect();
    let conv_strs: Vec<String> = conv_names.iter().map(|i| i.to_string()).collect();
    let bn_strs: Vec<String> = bn_names.iter().map(|i| i.to_string()).collect();
    let conv_idx: Vec<Literal> = (0..convs.len()).map(Literal::usize_unsuffixed).collect();
    let bn_idx: Vec<Literal> = (0..bns.len()).map(Literal::usize_unsuffixed).collect();
    let doc = format!("A `{name}` block of [`{net_ty}`] (generated by `resnext!`).");
    let (path_field, path_new, path_items) = match &path_ty {
        None => (quote!(), quote!(), quote!()),
        Some(pt) => {
            let pc: Vec<&Ident> = path_convs.iter().map(|f| &f.name).collect();
            let pb: Vec<&Ident> = path_bns.iter().map(|f| &f.name).collect();
            let pcs: Vec<String> = pc.iter().map(|i| i.to_string()).collect();
            let pbs: Vec<String> = pb.iter().map(|i| i.to_string()).collect();
            let pci: Vec<Literal> = (0..pc.len()).map(Literal::usize_unsuffixed).collect();
            let pbi: Vec<Literal> = (0..pb.len()).map(Literal::usize_unsuffixed).collect();
            let pstmts = &path_body.stmts;
            let pout = path_body.var[&path_out.expect("a path has nodes")].clone();
            let pdoc = format!("One of the C paths of a `{name}` block (paper Fig. 3a/3b).");
            (
                quote!(
                    /// The block's paths.
                    pub paths: ::std::vec::Vec<#pt>,
                ),
                quote!(
                    paths: (0..paths)
                        .map(|i| #pt::new(&(p / "paths" / i.to_string().as_str()), path_convs, path_bns))
                        .collect(),
                ),
                quote!(
                    #[doc = #pdoc]
                    #[derive(Debug)]
                    pub struct #pt {
                        #( #[doc = "A convolution."] pub #pc: #p::nn::Conv2D, )*
                        #( #[doc = "A batch-norm."] pub #pb: #p::nn::BatchNorm, )*
                    }

                    impl #pt {
                        /// Creates the path's variables under `p`.
                        pub fn new(p: &#p::nn::Path, convs: &[#p::ConvSpec], bns: &[i64]) -> Self {
                            Self {
                                #( #pc: #p::conv(&(p / #pcs), &convs[#pci]), )*
                                #( #pb: #p::batch_norm(&(p / #pbs), bns[#pbi]), )*
                            }
                        }

                        /// Runs path `index` of `parts` on the block's input (or its slice).
                        #[allow(unused_variables)]
                        pub fn forward_path(&self, xs: &#p::Tensor, index: i64, parts: i64, train: bool) -> #p::Tensor {
                            #(#pstmts)*
                            #pout
                        }
                    }
                ),
            )
        }
    };
    let (ds_field, ds_new) = if has_downsample {
        (
            quote!(
                /// The projection shortcut (1×1 conv and batch-norm), where the shape changes.
                pub downsample: ::core::option::Option<(#p::nn::Conv2D, #p::nn::BatchNorm)>,
            ),
            quote!(
                downsample: downsample.map(|spec| (
                    #p::conv(&(p / "downsample" / "0"), &spec),
                    #p::batch_norm(&(p / "downsample" / "1"), spec.cout),
                )),
            ),
        )
    } else {
        (quote!(), quote!())
    };
    let items = quote!(
        #[doc = #doc]
        #[derive(Debug)]
        pub struct #block_ty {
            #( #[doc = "A convolution."] pub #conv_names: #p::nn::Conv2D, )*
            #( #[doc = "A batch-norm."] pub #bn_names: #p::nn::BatchNorm, )*
            #path_field
            #ds_field
        }

        impl #block_ty {
            /// Creates the block's variables under `p`, with the concrete layer shapes.
            #[allow(unused_variables)]
            pub fn new(
                p: &#p::nn::Path,
                convs: &[#p::ConvSpec],
                bns: &[i64],
                paths: usize,
                path_convs: &[#p::ConvSpec],
                path_bns: &[i64],
                downsample: ::core::option::Option<#p::ConvSpec>,
            ) -> Self {
                Self {
                    #( #conv_names: #p::conv(&(p / #conv_strs), &convs[#conv_idx]), )*
                    #( #bn_names: #p::batch_norm(&(p / #bn_strs), bns[#bn_idx]), )*
                    #path_new
                    #ds_new
                }
            }
        }

        impl #p::nn::ModuleT for #block_ty {
            fn forward_t(&self, xs: &#p::Tensor, train: bool) -> #p::Tensor {
                #(#stmts)*
                #out
            }
        }

        #path_items
    );
    Template {
        block_ty,
        items,
        convs,
        bns,
        path_convs,
        path_bns,
    }
}

/// The `Block::new(..)` call of one block instance.
fn block_new(g: &LayerGraph, t: &Template, b: usize) -> TokenStream {
    let bp = &g.blocks[b].path;
    let nodes: Vec<NodeIndex> = g
        .nodes()
        .filter(|(_, n)| n.block == Some(b))
        .map(|(i, _)| i)
        .collect();
    let find = |r: &str| nodes.iter().copied().find(|&i| rel(&g.graph[i], bp) == r);
    let conv_specs: Vec<TokenStream> = t
        .convs
        .iter()
        .map(|f| {
            conv_spec(
                g,
                find(&f.name.to_string()).expect("same template, same fields"),
            )
        })
        .collect();
    let bn_c: Vec<Literal> = t
        .bns
        .iter()
        .map(|f| {
            lit_i(
                g.graph[find(&f.name.to_string()).expect("same fields")]
                    .shape
                    .c,
            )
        })
        .collect();
    let paths = nodes
        .iter()
        .filter_map(|&i| {
            rel(&g.graph[i], bp)
                .strip_prefix("paths.")?
                .split('.')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    let path_specs: Vec<TokenStream> = t
        .path_convs
        .iter()
        .map(|f| {
            conv_spec(
                g,
                find(&format!("paths.0.{}", f.name)).expect("same fields"),
            )
        })
        .collect();
    let path_bn_c: Vec<Literal> = t
        .path_bns
        .iter()
        .map(|f| {
            lit_i(
                g.graph[find(&format!("paths.0.{}", f.name)).expect("same fields")]
                    .shape
                    .c,
            )
        })
        .collect();
    let ds = match find("downsample.0") {
        Some(n) => {
            let s = conv_spec(g, n);
            quote!(::core::option::Option::Some(#s))
        }
        None => quote!(::core::option::Option::None),
    };
    let ty = &t.block_ty;
    let path_expr = bp.split('.').map(|s| quote!(/ #s));
    let paths = Literal::usize_unsuffixed(paths as usize);
    quote!(#ty::new(&(p #(#path_expr)*), &[#(#conv_specs),*], &[#(#bn_c),*], #paths, &[#(#path_specs),*], &[#(#path_bn_c),*], #ds))
}

/// Rust items for a compiled network: the network struct, its block structs, `new`, `ModuleT`
/// and the associated constants.
pub fn emit(c: &Compiled, names: &Names) -> TokenStream {
    let p = private();
    let g = &c.graph;
    let net_ty = format_ident!("{}", names.type_name);
    let vis = &names.vis;

    // One template per template name, represented by a block that has a projection if any does.
    let mut reps: BTreeMap<String, usize> = BTreeMap::new();
    let mut templates_of_stage = Vec::new();
    for (si, st) in g.stages.iter().enumerate() {
        let Some(t) = &st.template else { continue };
        let blocks: Vec<usize> = (0..g.blocks.len())
            .filter(|&b| g.blocks[b].stage == si)
            .collect();
        let with_ds = blocks.iter().copied().find(|&b| {
            g.nodes()
                .any(|(_, n)| n.block == Some(b) && n.path.ends_with(".downsample.0"))
        });
        let entry = reps.entry(t.clone()).or_insert(blocks[0]);
        if let Some(b) = with_ds {
            let has = g
                .nodes()
                .any(|(_, n)| n.block == Some(*entry) && n.path.ends_with(".downsample.0"));
            if !has {
                *entry = b;
            }
        }
        templates_of_stage.push((si, t.clone(), blocks));
    }
    let templates: BTreeMap<String, Template> = reps
        .iter()
        .map(|(name, &rep)| (name.clone(), template(g, &names.type_name, name, rep)))
        .collect();

    // The network's own fields and forward pass.
    let mut body = Body::new();
    body.var.insert(g.input, quote!((*xs)));
    let mut fields = Vec::new();
    let mut inits = Vec::new();
    let mut done_stage = vec![false; g.stages.len()];
    let mut stage_fields = Vec::new();
    for (n, node) in g.nodes() {
        if matches!(node.op, Op::Input { .. }) {
            continue;
        }
        if node.block.is_some() {
            let si = node.stage;
            if done_stage[si] {
                continue;
            }
            done_stage[si] = true;
            let (_, tname, blocks) = templates_of_stage
                .iter()
                .find(|(s, _, _)| *s == si)
                .expect("stage of blocks");
            let t = &templates[tname];
            let ty = &t.block_ty;
            let field = format_ident!("{}", g.stages[si].name);
            let x = body.input(g, n, 0);
            let v = format_ident!("v{}", n.index());
            body.stmts.push(quote!(
                let #v = self.#field.iter().fold(#x.shallow_clone(), |x, block| block.forward_t(&x, train));
            ));
            let last = g
                .nodes()
                .filter(|(_, m)| m.stage == si)
                .map(|(i, _)| i)
                .last()
                .expect("stage has nodes");
            body.var.insert(last, quote!(#v));
            let label = g.stages[si].label.clone().unwrap_or_default();
            let doc = format!("Stage `{label}`: {} `{tname}` blocks.", blocks.len());
            stage_fields.push(quote!(#[doc = #doc] pub #field: ::std::vec::Vec<#ty>,));
            let news = blocks.iter().map(|&b| block_new(g, t, b));
            inits.push(quote!(#field: ::std::vec::Vec::from([#(#news),*]),));
            continue;
        }
        match node.op {
            Op::Conv { .. } => {
                let f = format_ident!("{}", node.path);
                let spec = conv_spec(g, n);
                let name = &node.path;
                fields.push(quote!(#[doc = "A convolution."] pub #f: #p::nn::Conv2D,));
                inits.push(quote!(#f: #p::conv(&(p / #name), &#spec),));
                body.plain(g, n, Some(&f));
            }
            Op::BatchNorm => {
                let f = format_ident!("{}", node.path);
                let ch = lit_i(node.shape.c);
                let name = &node.path;
                fields.push(quote!(#[doc = "A batch-norm."] pub #f: #p::nn::BatchNorm,));
                inits.push(quote!(#f: #p::batch_norm(&(p / #name), #ch),));
                body.plain(g, n, Some(&f));
            }
            Op::Linear { out, bias } => {
                let f = format_ident!("{}", node.path);
                let fin = lit_i(g.input_shape(n).numel().unwrap_or(0));
                let fout = lit_i(out);
                let name = &node.path;
                fields.push(quote!(#[doc = "A fully connected layer."] pub #f: #p::nn::Linear,));
                inits.push(quote!(#f: #p::linear(&(p / #name), #fin, #fout, #bias),));
                body.plain(g, n, Some(&f));
            }
            _ => body.plain(g, n, None),
        }
    }
    let out = body.var[&g.output].clone();
    let stmts = &body.stmts;
    let template_items = templates.values().map(|t| &t.items);

    let t = c.report.total;
    let (params, buffers, macs, flops, acts) = (
        Literal::u64_unsuffixed(t.params),
        Literal::u64_unsuffixed(t.buffers),
        Literal::u64_unsuffixed(t.macs),
        Literal::u64_unsuffixed(t.flops()),
        Literal::u64_unsuffixed(t.activations),
    );
    let [ic, ih, iw] = c.model.input.map(lit_i);
    let output: Vec<Literal> = match g.graph[g.output].op {
        Op::Linear { out, .. } => vec![lit_i(out)],
        _ => c.output().iter().map(|&v| lit_i(v)).collect(),
    };
    let name = &c.model.name;
    let form = c.model.form.as_str();
    let doc = format!(
        "The `{name}` network from {} ({form} form), generated by `resnext!`: {} parameters, {} multiply-adds per {}x{}x{} image.",
        names.origin,
        crate::cost::grouped(t.params),
        crate::cost::grouped(t.macs),
        c.model.input[0],
        c.model.input[1],
        c.model.input[2]
    );
    quote!(
        #[doc = #doc]
        #[derive(Debug)]
        #vis struct #net_ty {
            #(#fields)*
            #(#stage_fields)*
        }

        impl #net_ty {
            /// The spec's network name.
            pub const NAME: &'static str = #name;
            /// Learnable parameters (conv and linear weights and biases, batch-norm affine).
            pub const PARAMS: u64 = #params;
            /// Batch-norm running statistics (mean and variance elements).
            pub const BUFFERS: u64 = #buffers;
            /// Multiply-adds per image (conv and linear layers).
            pub const MACS: u64 = #macs;
            /// FLOPs per image: 2 × multiply-adds.
            pub const FLOPS: u64 = #flops;
            /// Output elements of conv and linear layers per image.
            pub const ACTIVATIONS: u64 = #acts;
            /// Input `[C, H, W]`.
            pub const INPUT: [i64; 3] = [#ic, #ih, #iw];
            /// Output per image (`[classes]` after the fc).
            pub const OUTPUT: &'static [i64] = &[#(#output),*];

            /// Creates the network's variables under `p`, named as torchvision's `state_dict`.
            pub fn new(p: &#p::nn::Path) -> Self {
                Self {
                    #(#inits)*
                }
            }
        }

        impl #p::nn::ModuleT for #net_ty {
            fn forward_t(&self, xs: &#p::Tensor, train: bool) -> #p::Tensor {
                #(#stmts)*
                #out
            }
        }

        #(#template_items)*
    )
}

/// What the macro emits next to `compile_error!`: the struct with the same API, so that code
/// using it reports no further errors.
pub fn stub(names: &Names) -> TokenStream {
    let p = private();
    let net_ty = format_ident!("{}", names.type_name);
    let vis = &names.vis;
    quote!(
        #[derive(Debug)]
        #vis struct #net_ty {}

        impl #net_ty {
            pub const NAME: &'static str = "";
            pub const PARAMS: u64 = 0;
            pub const BUFFERS: u64 = 0;
            pub const MACS: u64 = 0;
            pub const FLOPS: u64 = 0;
            pub const ACTIVATIONS: u64 = 0;
            pub const INPUT: [i64; 3] = [0, 0, 0];
            pub const OUTPUT: &'static [i64] = &[];
            pub fn new(_p: &#p::nn::Path) -> Self {
                unreachable!("the spec has errors, reported at compile time")
            }
        }

        impl #p::nn::ModuleT for #net_ty {
            fn forward_t(&self, _xs: &#p::Tensor, _train: bool) -> #p::Tensor {
                unreachable!("the spec has errors, reported at compile time")
            }
        }
    )
}
