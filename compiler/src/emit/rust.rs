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

use super::blocks::{self, Kind, camel, kinds};
use crate::Compiled;
use crate::graph::{LayerGraph, Node, Op, OpKind, Role};
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

/// A struct name for a network name: `resnext50_32x4d` → `Resnext50_32x4d` (see
/// [`blocks::type_name`]).
pub fn type_name(network: &str) -> String {
    blocks::type_name(network)
}

/// `ConvSpec { .. }` literal for a conv node.
fn conv_spec(g: &LayerGraph, n: NodeIndex) -> TokenStream {
    let p = private();
    let c = g.conv(n).expect("conv_spec of a conv node");
    let (cin, out, kh, kw, stride, ph, pw, groups, bias) = (
        lit_i(c.cin),
        lit_i(c.cout),
        lit_i(c.kernel.0),
        lit_i(c.kernel.1),
        lit_i(c.stride),
        lit_i(c.pad.0),
        lit_i(c.pad.1),
        lit_i(c.groups),
        c.bias,
    );
    quote!(#p::ConvSpec { cin: #cin, cout: #out, kernel: [#kh, #kw], stride: #stride, pad: [#ph, #pw], groups: #groups, bias: #bias })
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

    /// The expression of input `k` of `n`. Nodes are visited in creation order, which is
    /// topological, so every input has been computed (or seeded as the block's input).
    fn input(&self, g: &LayerGraph, n: NodeIndex, k: usize) -> TokenStream {
        let i = g.inputs(n)[k];
        self.var.get(&i).cloned().unwrap_or_else(|| {
            panic!(
                "codegen: input {} of {} not computed",
                g.graph[i].path, g.graph[n].path
            )
        })
    }

    /// Binds `let vN = <expr>;` as node `n`'s value.
    fn bind(&mut self, n: NodeIndex, expr: TokenStream) {
        let v = format_ident!("v{}", n.index());
        self.stmts.push(quote!(let #v = #expr;));
        self.var.insert(n, quote!(#v));
    }

    /// Emits a node that needs no structure around it: a layer with its `field`, or an
    /// operation on its inputs.
    fn plain(&mut self, g: &LayerGraph, n: NodeIndex, field: Option<&Ident>) {
        let x = || self.input(g, n, 0);
        let expr = match (g.graph[n].op, field) {
            (Op::Conv { .. }, Some(f)) => {
                let x = x();
                quote!(#x.apply(&self.#f))
            }
            (Op::Linear { .. }, Some(f)) => {
                let x = x();
                quote!(#x.flatten(1, -1).apply(&self.#f))
            }
            (Op::BatchNorm, Some(f)) => {
                let x = x();
                quote!(#x.apply_t(&self.#f, train))
            }
            (Op::Relu, _) => {
                let x = x();
                quote!(#x.relu())
            }
            (
                Op::MaxPool {
                    kernel,
                    stride,
                    pad,
                },
                _,
            ) => {
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
            (Op::GlobalAvgPool, _) => {
                let x = x();
                quote!(#x.adaptive_avg_pool2d([1, 1]))
            }
            (Op::Add, _) => {
                let ins: Vec<TokenStream> = (0..g.inputs(n).len())
                    .map(|k| self.input(g, n, k))
                    .collect();
                quote!(#(&#ins)+*)
            }
            (op, _) => unreachable!(
                "codegen: {} at {} has no plain form",
                op.kind(),
                g.graph[n].path
            ),
        };
        self.bind(n, expr);
    }
}

/// The field of a layer inside a block: `conv{k}` or `bn{k}` for its role's statement number.
fn field(node: &Node) -> Option<Ident> {
    let k = match node.role {
        Role::Branch { k } | Role::Path { k, .. } => k,
        _ => return None,
    };
    match node.op.kind() {
        OpKind::Conv => Some(format_ident!("conv{}", k)),
        OpKind::BatchNorm => Some(format_ident!("bn{}", k)),
        _ => None,
    }
}

/// The struct name of each kind ([`blocks::kind_names`]).
fn kind_types(net_ty: &str, kinds: &[Kind]) -> Vec<Ident> {
    blocks::kind_names(net_ty, kinds)
        .iter()
        .map(|n| format_ident!("{}", n))
        .collect()
}

/// The fields of a block struct and of its path struct, in creation order.
#[derive(Default)]
struct Fields {
    convs: Vec<Ident>,
    bns: Vec<Ident>,
    path_convs: Vec<Ident>,
    path_bns: Vec<Ident>,
    downsample: bool,
}

impl Fields {
    /// Records the field of a conv or batch-norm node ([`field`]) among the block's fields or,
    /// with `path`, its path's; returns it.
    fn add(&mut self, node: &Node, path: bool) -> Option<Ident> {
        let field = field(node)?;
        let list = match (node.op.kind(), path) {
            (OpKind::Conv, false) => &mut self.convs,
            (OpKind::Conv, true) => &mut self.path_convs,
            // `field` names convs and batch-norms only.
            (_, false) => &mut self.bns,
            (_, true) => &mut self.path_bns,
        };
        list.push(field.clone());
        Some(field)
    }
}

/// The forward statements of a block (and of its path), with the fields they use.
struct Forward {
    body: Body,
    path_body: Body,
    /// The last node of path 0.
    path_out: Option<NodeIndex>,
    fields: Fields,
}

fn forward(g: &LayerGraph, rep: usize) -> Forward {
    let p = private();
    let nodes: Vec<NodeIndex> = g.block_nodes(rep).map(|(i, _)| i).collect();
    let block_input = nodes
        .iter()
        .flat_map(|&n| g.inputs(n))
        .find(|&i| g.graph[i].block != Some(rep))
        .expect("a block has an input");
    let mut f = Forward {
        body: Body::new(),
        path_body: Body::new(),
        path_out: None,
        fields: Fields::default(),
    };
    f.body.var.insert(block_input, quote!((*xs)));
    for &n in &nodes {
        let node = &g.graph[n];
        match node.role {
            Role::Path { p: 0, .. } | Role::Slice { p: 0 } => {
                if f.path_out.is_none() {
                    // The paths' input: the input of path 0's first node.
                    f.path_body.var.insert(g.inputs(n)[0], quote!((*xs)));
                    let outer_in = f.body.input(g, n, 0);
                    f.body.stmts.push(quote!(
                        let parts = self.paths.len() as i64;
                        let outs: ::std::vec::Vec<#p::Tensor> = self.paths.iter().enumerate()
                            .map(|(i, path)| path.forward_path(&#outer_in, i as i64, parts, train))
                            .collect();
                    ));
                }
                if let Op::Slice { .. } = node.op {
                    let x = f.path_body.input(g, n, 0);
                    let v = format_ident!("v{}", n.index());
                    f.path_body.stmts.push(quote!(
                        let len = #x.size()[1] / parts;
                        let #v = #x.narrow(1, index * len, len);
                    ));
                    f.path_body.var.insert(n, quote!(#v));
                } else {
                    let field = f.fields.add(node, true);
                    f.path_body.plain(g, n, field.as_ref());
                }
                f.path_out = Some(n);
            }
            Role::Path { .. } | Role::Slice { .. } => {}
            Role::Downsample if node.op.kind() == OpKind::Conv => f.fields.downsample = true,
            Role::Downsample => f.body.bind(
                n,
                quote!(match &self.downsample {
                    ::core::option::Option::Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
                    ::core::option::Option::None => xs.shallow_clone(),
                }),
            ),
            Role::Merge if node.op == Op::Concat => {
                f.body.bind(n, quote!(#p::Tensor::cat(&outs, 1)));
            }
            Role::Merge => f.body.bind(
                n,
                quote!(
                    outs[1..]
                        .iter()
                        .fold(outs[0].shallow_clone(), |acc, t| acc + t)
                ),
            ),
            Role::Residual => {
                // The branch plus the shortcut: the projection, or the block's input itself.
                let (h, s) = (f.body.input(g, n, 0), f.body.input(g, n, 1));
                f.body.bind(n, quote!(&#h + &#s));
            }
            _ => {
                let field = f.fields.add(node, false);
                f.body.plain(g, n, field.as_ref());
            }
        }
    }
    f
}

/// The struct of one path of a split or concat block (paper Fig. 3a/3b).
fn path_struct(
    pt: &Ident,
    name: &str,
    fields: &Fields,
    path_body: &Body,
    path_out: NodeIndex,
) -> TokenStream {
    let p = private();
    let (pc, pb) = (&fields.path_convs, &fields.path_bns);
    let pcs: Vec<String> = pc.iter().map(|i| i.to_string()).collect();
    let pbs: Vec<String> = pb.iter().map(|i| i.to_string()).collect();
    let pci: Vec<Literal> = (0..pc.len()).map(Literal::usize_unsuffixed).collect();
    let pbi: Vec<Literal> = (0..pb.len()).map(Literal::usize_unsuffixed).collect();
    let pstmts = &path_body.stmts;
    let pout = &path_body.var[&path_out];
    let pdoc = format!("One of the C paths of a `{name}` block (paper Fig. 3a/3b).");
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
    )
}

/// The items of one block kind (its struct, `new`, `ModuleT`, and its path struct), derived from
/// its representative block's nodes.
fn template(g: &LayerGraph, net_ty: &str, kind: &Kind, ty: &Ident) -> TokenStream {
    let p = private();
    let name = &kind.template;
    let Forward {
        body,
        path_body,
        path_out,
        fields,
    } = forward(g, kind.rep);
    let last = g.block_nodes(kind.rep).last().expect("a block has nodes").0;
    let out = &body.var[&last];
    let stmts = &body.stmts;
    let (conv_names, bn_names) = (&fields.convs, &fields.bns);
    let conv_strs: Vec<String> = conv_names.iter().map(|i| i.to_string()).collect();
    let bn_strs: Vec<String> = bn_names.iter().map(|i| i.to_string()).collect();
    let conv_idx: Vec<Literal> = (0..conv_names.len())
        .map(Literal::usize_unsuffixed)
        .collect();
    let bn_idx: Vec<Literal> = (0..bn_names.len()).map(Literal::usize_unsuffixed).collect();
    let doc = format!("A `{name}` block of [`{net_ty}`] (generated by `resnext!`).");
    let (path_field, path_new, path_items) = match path_out {
        None => (quote!(), quote!(), quote!()),
        Some(path_out) => {
            let pt = format_ident!("{}Path", ty);
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
                path_struct(&pt, name, &fields, &path_body, path_out),
            )
        }
    };
    let (ds_field, ds_new) = if fields.downsample {
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
    quote!(
        #[doc = #doc]
        #[derive(Debug)]
        pub struct #ty {
            #( #[doc = "A convolution."] pub #conv_names: #p::nn::Conv2D, )*
            #( #[doc = "A batch-norm."] pub #bn_names: #p::nn::BatchNorm, )*
            #path_field
            #ds_field
        }

        impl #ty {
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

        impl #p::nn::ModuleT for #ty {
            fn forward_t(&self, xs: &#p::Tensor, train: bool) -> #p::Tensor {
                #(#stmts)*
                #out
            }
        }

        #path_items
    )
}

/// The `Block::new(..)` call of one block instance. Its arguments list the block's layers in
/// creation order, by role, which is the order of the struct's fields: the block has the
/// layout of its kind, so the two agree by construction.
fn block_new(g: &LayerGraph, ty: &Ident, b: usize) -> TokenStream {
    let (mut convs, mut bns, mut path_convs, mut path_bns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ds, mut paths) = (quote!(::core::option::Option::None), 0u64);
    for (n, node) in g.block_nodes(b) {
        let kind = node.op.kind();
        match (node.role, kind) {
            (Role::Downsample, OpKind::Conv) => {
                let s = conv_spec(g, n);
                ds = quote!(::core::option::Option::Some(#s));
            }
            (Role::Path { p, .. } | Role::Slice { p }, _) => {
                paths = paths.max(p + 1);
                match (p, kind) {
                    (0, OpKind::Conv) => path_convs.push(conv_spec(g, n)),
                    (0, OpKind::BatchNorm) => path_bns.push(lit_i(node.shape.c)),
                    _ => {}
                }
            }
            (Role::Branch { .. }, OpKind::Conv) => convs.push(conv_spec(g, n)),
            (Role::Branch { .. }, OpKind::BatchNorm) => bns.push(lit_i(node.shape.c)),
            _ => {}
        }
    }
    let path_expr = g.blocks[b].path.split('.').map(|s| quote!(/ #s));
    let paths = Literal::usize_unsuffixed(paths as usize);
    quote!(#ty::new(&(p #(#path_expr)*), &[#(#convs),*], &[#(#bns),*], #paths, &[#(#path_convs),*], &[#(#path_bns),*], #ds))
}

/// A stage's element type: the block struct when all its blocks share a kind, otherwise an
/// enum over the kinds it uses (a template argument or `stride` can change a block's layout,
/// say cardinality 1 in one block and 4 in another under `form split`).
fn stage_type(
    net_ty: &str,
    stage: &str,
    kinds: &[usize],
    types: &[Ident],
) -> (Ident, TokenStream, Vec<Ident>) {
    let mut used: Vec<usize> = kinds.to_vec();
    used.sort_unstable();
    used.dedup();
    if let [only] = used.as_slice() {
        return (types[*only].clone(), quote!(), Vec::new());
    }
    let p = private();
    let ty = format_ident!("{}{}Block", net_ty, camel(stage));
    let variants: Vec<Ident> = used
        .iter()
        .map(|&k| format_ident!("{}", types[k].to_string().trim_start_matches(net_ty)))
        .collect();
    let inner: Vec<&Ident> = used.iter().map(|&k| &types[k]).collect();
    let doc = format!("A block of stage `{stage}`, whose blocks do not all share one layout.");
    let items = quote!(
        #[doc = #doc]
        #[derive(Debug)]
        pub enum #ty {
            #( #[doc = "A block of this layout."] #variants(#inner), )*
        }

        impl #p::nn::ModuleT for #ty {
            fn forward_t(&self, xs: &#p::Tensor, train: bool) -> #p::Tensor {
                match self {
                    #( Self::#variants(block) => block.forward_t(xs, train), )*
                }
            }
        }
    );
    let of_kind = kinds
        .iter()
        .map(|k| variants[used.binary_search(k).expect("listed")].clone())
        .collect();
    (ty, items, of_kind)
}

/// The network struct's parts: its own layers (stem and head), one `Vec` field per stage, and
/// the forward statements.
struct NetworkParts {
    body: Body,
    /// Fields of the stem's and head's layers.
    fields: Vec<TokenStream>,
    /// One field per stage.
    stage_fields: Vec<TokenStream>,
    /// Field initialisers, in creation order.
    inits: Vec<TokenStream>,
    /// Stage enums, for stages whose blocks do not share one layout.
    stage_items: Vec<TokenStream>,
}

impl NetworkParts {
    fn build(g: &LayerGraph, net_ty: &str, kind_of: &[usize], types: &[Ident]) -> NetworkParts {
        let mut parts = NetworkParts {
            body: Body::new(),
            fields: Vec::new(),
            stage_fields: Vec::new(),
            inits: Vec::new(),
            stage_items: Vec::new(),
        };
        parts.body.var.insert(g.input, quote!((*xs)));
        let mut done_stage = vec![false; g.stages.len()];
        for (n, node) in g.nodes() {
            match node.block {
                _ if node.role == Role::Input => {}
                Some(_) if !done_stage[node.stage] => {
                    done_stage[node.stage] = true;
                    parts.stage(g, n, net_ty, kind_of, types);
                }
                Some(_) => {}
                None => parts.layer(g, n),
            }
        }
        parts
    }

    /// The stage of block node `n` (its first): a `Vec` of blocks, folded in `forward_t`.
    fn stage(
        &mut self,
        g: &LayerGraph,
        n: NodeIndex,
        net_ty: &str,
        kind_of: &[usize],
        types: &[Ident],
    ) {
        let si = g.graph[n].stage;
        let blocks: Vec<usize> = (0..g.blocks.len())
            .filter(|&b| g.blocks[b].stage == si)
            .collect();
        let stage_kinds: Vec<usize> = blocks.iter().map(|&b| kind_of[b]).collect();
        let stage = &g.stages[si].name;
        let (ty, items, variants) = stage_type(net_ty, stage, &stage_kinds, types);
        self.stage_items.push(items);
        let field = format_ident!("{}", stage);
        let x = self.body.input(g, n, 0);
        let v = format_ident!("v{}", n.index());
        self.body.stmts.push(quote!(
            let #v = self.#field.iter().fold(#x.shallow_clone(), |x, block| block.forward_t(&x, train));
        ));
        let last = g
            .nodes()
            .filter(|(_, m)| m.stage == si)
            .map(|(i, _)| i)
            .last()
            .expect("stage has nodes");
        self.body.var.insert(last, quote!(#v));
        let label = g.stages[si].label.clone().unwrap_or_default();
        let tname = g.stages[si].template.clone().unwrap_or_default();
        let doc = format!("Stage `{label}`: {} `{tname}` blocks.", blocks.len());
        self.stage_fields
            .push(quote!(#[doc = #doc] pub #field: ::std::vec::Vec<#ty>,));
        let news = blocks.iter().enumerate().map(|(i, &b)| {
            let new = block_new(g, &types[kind_of[b]], b);
            match variants.get(i) {
                Some(v) => quote!(#ty::#v(#new)),
                None => new,
            }
        });
        self.inits
            .push(quote!(#field: ::std::vec::Vec::from([#(#news),*]),));
    }

    /// A stem or head node: a field for a layer with variables, and its forward statement.
    fn layer(&mut self, g: &LayerGraph, n: NodeIndex) {
        let p = private();
        let node = &g.graph[n];
        let f = format_ident!("{}", node.path);
        let name = &node.path;
        let (doc, ty, init) = match node.op {
            Op::Conv { .. } => {
                let spec = conv_spec(g, n);
                (
                    "A convolution.",
                    quote!(Conv2D),
                    quote!(#p::conv(&(p / #name), &#spec)),
                )
            }
            Op::BatchNorm => {
                let ch = lit_i(node.shape.c);
                (
                    "A batch-norm.",
                    quote!(BatchNorm),
                    quote!(#p::batch_norm(&(p / #name), #ch)),
                )
            }
            Op::Linear { out, bias } => {
                let fin = lit_i(g.input_shape(n).numel().unwrap_or(0));
                let fout = lit_i(out);
                (
                    "A fully connected layer.",
                    quote!(Linear),
                    quote!(#p::linear(&(p / #name), #fin, #fout, #bias)),
                )
            }
            _ => return self.body.plain(g, n, None),
        };
        self.fields.push(quote!(#[doc = #doc] pub #f: #p::nn::#ty,));
        self.inits.push(quote!(#f: #init,));
        self.body.plain(g, n, Some(&f));
    }
}

/// Rust items for a compiled network: the network struct, its block structs, `new`, `ModuleT`
/// and the associated constants.
pub fn emit(c: &Compiled, names: &Names) -> TokenStream {
    let p = private();
    let g = &c.graph;
    let net_ty = format_ident!("{}", names.type_name);
    let vis = &names.vis;

    // One struct per block kind (template and layout); one element type per stage.
    let (kinds, kind_of) = kinds(g);
    let types = kind_types(&names.type_name, &kinds);
    let template_items: Vec<TokenStream> = kinds
        .iter()
        .zip(&types)
        .map(|(k, ty)| template(g, &names.type_name, k, ty))
        .collect();
    let NetworkParts {
        body,
        fields,
        stage_fields,
        inits,
        stage_items,
    } = NetworkParts::build(g, &names.type_name, &kind_of, &types);
    let out = &body.var[&g.output];
    let stmts = &body.stmts;

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
        #(#stage_items)*
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
