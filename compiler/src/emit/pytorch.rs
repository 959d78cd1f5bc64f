//! Code generation for PyTorch: a compiled network as one self-contained Python module that
//! needs only `torch` (`archc codegen --target pytorch`).
//!
//! The module reads like torchvision's `models/resnet.py`: one `nn.Module` class per network,
//! one per block kind (a template and its [layout](super::blocks::Layout), as the Rust target
//! keys its structs), and one per path class in the `split` and `concat` forms. Attributes are
//! named after torchvision's modules (`conv1`, `bn1`, `layer2`, `downsample`, `fc`, and
//! `paths.{p}` in the path forms), so `state_dict` keys and shapes are torchvision's and
//! archc-runtime's, and checkpoints move between the three. The network class carries the
//! compiler's figures as class constants (`PARAMS`, `BUFFERS`, `MACS`, `FLOPS`, `ACTIVATIONS`,
//! `INPUT`, `OUTPUT`) and initialises its weights as torchvision does.
//!
//! Blocks get their convolutions' geometry as `Conv` values (a `NamedTuple` the module defines),
//! because blocks of one class differ in channels, strides and groups; the network's `__init__`
//! spells out every block, so the geometry of the whole network is visible in one place.
//!
//! The text is laid out the way `ruff format` lays out Python (line length 88, calls split at
//! their parentheses, one argument per line with a trailing comma when they do not fit on one
//! indented line), so the generated file is already formatted. Generation needs no Python.

use super::blocks::{self, Kind};
use crate::Compiled;
use crate::graph::{ConvGeometry, LayerGraph, Node, Op, OpKind, Role};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

/// The longest line `ruff format` keeps (its default).
const LINE: usize = 88;

/// A Python expression, for layout: something that stays on one line, or a call whose arguments
/// can be split over lines.
#[derive(Debug, Clone)]
enum Expr {
    Atom(String),
    Call {
        head: String,
        args: Vec<Expr>,
        tail: String,
    },
}

fn atom(s: impl Into<String>) -> Expr {
    Expr::Atom(s.into())
}

fn call(head: impl Into<String>, args: Vec<Expr>) -> Expr {
    Expr::Call {
        head: head.into(),
        args,
        tail: String::new(),
    }
}

impl Expr {
    fn flat(&self) -> String {
        match self {
            Expr::Atom(s) => s.clone(),
            Expr::Call { head, args, tail } => {
                let args: Vec<String> = args.iter().map(Expr::flat).collect();
                format!("{head}({}){tail}", args.join(", "))
            }
        }
    }
}

/// Python source, line by line.
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn line(&mut self, indent: usize, text: &str) {
        if !text.is_empty() {
            self.out.extend(std::iter::repeat_n(' ', indent));
            self.out.push_str(text);
        }
        self.out.push('\n');
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    /// `prefix expr suffix` at `indent`, split as ruff splits it when it is too long: first
    /// the arguments together on one indented line, then one argument per line with a trailing
    /// comma.
    fn expr(&mut self, indent: usize, prefix: &str, e: &Expr, suffix: &str) {
        let flat = format!("{prefix}{}{suffix}", e.flat());
        let Expr::Call { head, args, tail } = e else {
            return self.line(indent, &flat);
        };
        if indent + flat.chars().count() <= LINE || args.is_empty() {
            return self.line(indent, &flat);
        }
        self.line(indent, &format!("{prefix}{head}("));
        let inner: Vec<String> = args.iter().map(Expr::flat).collect();
        let inner = inner.join(", ");
        if indent + 4 + inner.chars().count() <= LINE {
            self.line(indent + 4, &inner);
        } else {
            for a in args {
                self.expr(indent + 4, "", a, ",");
            }
        }
        self.line(indent, &format!("){tail}{suffix}"));
    }

    /// A docstring of paragraphs, each wrapped to the line length: one line when it fits.
    fn doc(&mut self, indent: usize, paragraphs: &[String]) {
        let width = LINE - indent;
        if let [one] = paragraphs {
            if one.chars().count() + 6 <= width {
                return self.line(indent, &format!("\"\"\"{one}\"\"\""));
            }
        }
        let mut lines = Vec::new();
        for (i, p) in paragraphs.iter().enumerate() {
            if i > 0 {
                lines.push(String::new());
            }
            // The first line also holds the opening quotes.
            let mut line = if i == 0 {
                "\"\"\"".to_string()
            } else {
                String::new()
            };
            let mut empty = true;
            for word in p.split(' ') {
                if !empty && line.chars().count() + 1 + word.chars().count() > width {
                    lines.push(std::mem::take(&mut line));
                    empty = true;
                }
                if !empty {
                    line.push(' ');
                }
                line.push_str(word);
                empty = false;
            }
            lines.push(line);
        }
        lines.push("\"\"\"".to_string());
        for l in &lines {
            self.line(indent, l);
        }
    }
}

/// An integer as Python writes it readably: `25_557_032` (up to four digits, ungrouped).
fn int(n: u64) -> String {
    if n < 10_000 {
        n.to_string()
    } else {
        crate::cost::grouped_by(n, '_')
    }
}

/// `3` for a square window, `(3, 1)` otherwise.
fn pair(p: (u64, u64)) -> String {
    if p.0 == p.1 {
        p.0.to_string()
    } else {
        format!("({}, {})", p.0, p.1)
    }
}

/// `cin, cout, KERNEL`, then `stride`, `padding` and `groups` unless they are 1, 0 and 1: the
/// arguments both spellings of a conv share.
fn conv_args(c: &ConvGeometry, kernel: String) -> Vec<Expr> {
    let mut args = vec![
        atom(c.cin.to_string()),
        atom(c.cout.to_string()),
        atom(kernel),
    ];
    if c.stride != 1 {
        args.push(atom(format!("stride={}", c.stride)));
    }
    if c.pad != (0, 0) {
        args.push(atom(format!("padding={}", pair(c.pad))));
    }
    if c.groups != 1 {
        args.push(atom(format!("groups={}", c.groups)));
    }
    args
}

/// `Conv(cin, cout, kernel, stride=.., padding=.., groups=.., bias=True)`, defaults left out.
fn conv_value(c: &ConvGeometry) -> Expr {
    let mut args = conv_args(c, pair(c.kernel));
    if c.bias {
        args.push(atom("bias=True"));
    }
    call("Conv", args)
}

/// `nn.Conv2d(...)` for a stem or head conv, as torchvision writes its stem.
fn conv_module(c: &ConvGeometry) -> Expr {
    let mut args = conv_args(c, format!("kernel_size={}", pair(c.kernel)));
    if !c.bias {
        args.push(atom("bias=False"));
    }
    call("nn.Conv2d", args)
}

/// The statement number of a block layer (`conv{k}`, `bn{k}`).
fn statement(node: &Node) -> Option<u32> {
    match node.role {
        Role::Branch { k } | Role::Path { k, .. } => Some(k),
        _ => None,
    }
}

/// What one generated block class holds and does, read from its kind's representative block.
struct BlockClass {
    /// `__init__` parameters after `self`, in order: `(name, annotation)`.
    params: Vec<(String, &'static str)>,
    /// `__init__`'s attributes after `super().__init__()`, in order.
    init: Vec<(String, Init)>,
    /// `forward` lines (relative indentation, text).
    forward: Vec<(usize, String)>,
    /// The path class's parameters, init and forward, in the path forms.
    path: Option<PathClass>,
}

/// How a block class's `__init__` sets an attribute.
enum Init {
    /// `self.{name} = <expr>`.
    Module(Expr),
    /// `self.paths`: a `nn.ModuleList` filled by a loop ([`PathClass::build`]).
    Paths,
}

/// The path class of a block class, in the `split` and `concat` forms.
struct PathClass {
    params: Vec<String>,
    init: Vec<(String, Expr)>,
    forward: Vec<String>,
    /// The body of the block's loop that appends its paths: (expression, prefix).
    build: Vec<(Expr, String)>,
    /// The loop variable: `i` where it is used, else `_`.
    index: &'static str,
}

/// Values of a block's forward pass: which node each name holds.
struct Names {
    /// `out`'s node.
    out: Option<NodeIndex>,
    /// The block's input, `x`.
    input: Option<NodeIndex>,
}

impl Names {
    /// The name holding node `i`'s value.
    fn of(&self, g: &LayerGraph, i: NodeIndex, user: NodeIndex) -> &'static str {
        if Some(i) == self.out {
            "out"
        } else if Some(i) == self.input {
            "x"
        } else {
            unreachable!(
                "pytorch: input {} of {} is neither `out` nor `x`",
                g.graph[i].path, g.graph[user].path
            )
        }
    }
}

fn block_class(g: &LayerGraph, block: &Kind, name: &str) -> BlockClass {
    let nodes = blocks::layout_nodes(g, block.rep);
    let input = nodes
        .iter()
        .flat_map(|&n| g.inputs(n))
        .find(|&i| g.graph[i].block != Some(block.rep))
        .expect("a block has an input");
    // Which `Conv` parameter gives a batch-norm its channels: the conv of the same statement.
    let mut conv_param: BTreeMap<u32, String> = BTreeMap::new();
    for &n in &nodes {
        let node = &g.graph[n];
        match (node.role, node.op.kind()) {
            (Role::Branch { k }, OpKind::Conv) => {
                conv_param.insert(k, format!("conv{k}"));
            }
            (Role::Path { k, .. }, OpKind::Conv) => {
                conv_param.insert(k, format!("path_conv{k}"));
            }
            _ => {}
        }
    }
    let mut class = BlockClass {
        params: Vec::new(),
        init: Vec::new(),
        forward: vec![(0, "identity = x".to_string()), (0, String::new())],
        path: None,
    };
    let mut names = Names {
        out: None,
        input: Some(input),
    };
    let mut relu = false;
    let mut path_out = None;
    for &n in &nodes {
        let node = &g.graph[n];
        let kind = node.op.kind();
        match node.role {
            Role::Path { .. } | Role::Slice { .. } => {
                if class.path.is_none() {
                    let source = names.of(g, g.inputs(n)[0], n);
                    class.params.push(("paths".to_string(), "int"));
                    class.path = Some(PathClass {
                        params: Vec::new(),
                        init: Vec::new(),
                        forward: Vec::new(),
                        build: Vec::new(),
                        index: "_",
                    });
                    // The loop that builds the paths: `write_block` writes it from `path.build`.
                    class.init.push(("paths".to_string(), Init::Paths));
                    if kind == OpKind::Slice {
                        class
                            .forward
                            .push((0, format!("parts = {source}.chunk(len(self.paths), dim=1)")));
                        class.forward.push((
                            0,
                            "outs = [path(part) for path, part in zip(self.paths, parts)]"
                                .to_string(),
                        ));
                    } else {
                        class
                            .forward
                            .push((0, format!("outs = [path({source}) for path in self.paths]")));
                    }
                }
                let path = class.path.as_mut().expect("created above");
                let first = path.forward.is_empty();
                let x = if first { "x" } else { "out" };
                match (kind, statement(node)) {
                    (OpKind::Slice, _) => continue,
                    (OpKind::Conv, Some(k)) => {
                        path.params.push(format!("conv{k}"));
                        class.params.push((format!("path_conv{k}"), "Conv"));
                        path.init
                            .push((format!("conv{k}"), atom(format!("conv{k}.module()"))));
                        path.forward.push(format!("out = self.conv{k}({x})"));
                    }
                    (OpKind::BatchNorm, Some(k)) => {
                        path.init.push((
                            format!("bn{k}"),
                            atom(format!("nn.BatchNorm2d(conv{k}.cout)")),
                        ));
                        path.forward.push(format!("out = self.bn{k}({x})"));
                    }
                    (OpKind::Relu, _) => {
                        if !path.init.iter().any(|(f, _)| f == "relu") {
                            path.init
                                .push(("relu".to_string(), atom("nn.ReLU(inplace=True)")));
                        }
                        path.forward.push(format!("out = self.relu({x})"));
                    }
                    (k, _) => unreachable!("pytorch: a path holds no {k}"),
                }
                path_out = Some(n);
            }
            Role::Merge => {
                let expr = match node.op {
                    Op::Concat => "torch.cat(outs, dim=1)",
                    _ => "torch.stack(outs).sum(dim=0)",
                };
                class.forward.push((0, format!("out = {expr}")));
                names.out = Some(n);
            }
            Role::Residual => {
                let x = names.of(g, g.inputs(n)[0], n);
                if block.downsample {
                    class
                        .forward
                        .push((0, "if self.downsample is not None:".to_string()));
                    class
                        .forward
                        .push((1, "identity = self.downsample(x)".to_string()));
                }
                if x != "out" {
                    class.forward.push((0, format!("out = {x}")));
                }
                class.forward.push((0, "out += identity".to_string()));
                names.out = Some(n);
            }
            Role::Branch { .. } | Role::Output => {
                let x = names.of(g, g.inputs(n)[0], n);
                match (kind, statement(node)) {
                    (OpKind::Conv, Some(k)) => {
                        class.params.push((format!("conv{k}"), "Conv"));
                        let conv = atom(format!("conv{k}.module()"));
                        class.init.push((format!("conv{k}"), Init::Module(conv)));
                        class.forward.push((0, format!("out = self.conv{k}({x})")));
                    }
                    (OpKind::BatchNorm, Some(k)) => {
                        let bn = atom(format!("nn.BatchNorm2d({}.cout)", conv_param[&k]));
                        class.init.push((format!("bn{k}"), Init::Module(bn)));
                        class.forward.push((0, format!("out = self.bn{k}({x})")));
                    }
                    (OpKind::Relu, _) => {
                        relu = true;
                        class.forward.push((0, format!("out = self.relu({x})")));
                    }
                    (k, _) => unreachable!("pytorch: a block's branch holds no {k}"),
                }
                names.out = Some(n);
            }
            r => unreachable!("pytorch: {r:?} in a block's layout"),
        }
    }
    class.forward.push((0, String::new()));
    class.forward.push((0, "return out".to_string()));
    if relu {
        let relu = atom("nn.ReLU(inplace=True)");
        class.init.push(("relu".to_string(), Init::Module(relu)));
    }
    if let (Some(path), Some(last)) = (&mut class.path, path_out) {
        path.forward.push(String::new());
        path.forward.push("return out".to_string());
        // Every path has path 0's geometry. In the split form the paths' outputs are summed,
        // so only the first adds the merged conv's bias.
        let convs: Vec<String> = path.params.iter().map(|c| format!("path_{c}")).collect();
        let merged = g.graph[last].op.kind() == OpKind::Conv;
        let mut lines = Vec::new();
        let mut args: Vec<Expr> = convs.iter().map(atom).collect();
        if let (true, Some(c)) = (merged, convs.last()) {
            let k = c.trim_start_matches("path_");
            lines.push((
                atom(format!(
                    "# The paths are summed: only the first adds {k}'s bias."
                )),
                String::new(),
            ));
            lines.push((
                atom(format!("{c} if i == 0 else {c}._replace(bias=False)")),
                format!("{k} = "),
            ));
            args.pop();
            args.push(atom(k));
        }
        lines.push((
            call("self.paths.append", vec![call(format!("{name}Path"), args)]),
            String::new(),
        ));
        path.build = lines;
        path.index = if merged { "i" } else { "_" };
    }
    if block.downsample {
        class.params.push(("downsample".to_string(), "Conv | None"));
    }
    class
}

/// The keyword arguments of one block's constructor call: its convs in the order of its
/// class's parameters (the block has its kind's layout, so the two agree by construction).
fn block_args(g: &LayerGraph, b: usize, class: &BlockClass) -> Vec<Expr> {
    let mut values: BTreeMap<String, Expr> = BTreeMap::new();
    let mut paths = 0;
    for (n, node) in g.block_nodes(b) {
        let conv = g.conv(n);
        match (node.role, conv) {
            (Role::Downsample, Some(c)) => {
                values.insert("downsample".to_string(), conv_value(&c));
            }
            (Role::Path { p, k }, c) => {
                paths = paths.max(p + 1);
                if let (0, Some(c)) = (p, c) {
                    values.insert(format!("path_conv{k}"), conv_value(&c));
                }
            }
            (Role::Slice { p }, _) => paths = paths.max(p + 1),
            (Role::Branch { k }, Some(c)) => {
                values.insert(format!("conv{k}"), conv_value(&c));
            }
            _ => {}
        }
    }
    values.insert("paths".to_string(), atom(paths.to_string()));
    class
        .params
        .iter()
        .filter_map(|(name, _)| {
            let v = values.remove(name)?;
            Some(keyword(name, v))
        })
        .collect()
}

/// `name=value`, keeping a call splittable.
fn keyword(name: &str, v: Expr) -> Expr {
    match v {
        Expr::Call { head, args, tail } => Expr::Call {
            head: format!("{name}={head}"),
            args,
            tail,
        },
        Expr::Atom(a) => atom(format!("{name}={a}")),
    }
}

/// The costs as class constants, with what they count.
fn constants(w: &mut Writer, c: &Compiled) {
    let t = c.report.total;
    let [ic, ih, iw] = c.model.input;
    w.line(
        4,
        &format!("# Per {ic}x{ih}x{iw} image, as archc counts (torchvision's convention)."),
    );
    w.line(
        4,
        "# MACS: multiply-adds of the conv and linear layers; FLOPS = 2 * MACS.",
    );
    w.line(
        4,
        "# PARAMS: learnable elements; BUFFERS: batch-norm running means and variances.",
    );
    w.line(
        4,
        "# ACTIVATIONS: output elements of the conv and linear layers.",
    );
    w.line(4, &format!("PARAMS = {}", int(t.params)));
    w.line(4, &format!("BUFFERS = {}", int(t.buffers)));
    w.line(4, &format!("MACS = {}", int(t.macs)));
    w.line(4, &format!("FLOPS = {}", int(t.flops())));
    w.line(4, &format!("ACTIVATIONS = {}", int(t.activations)));
    w.line(4, &format!("INPUT = ({ic}, {ih}, {iw})"));
    let out: Vec<String> = match c.graph.graph[c.graph.output].op {
        Op::Linear { out, .. } => vec![out.to_string()],
        _ => c.output().iter().map(u64::to_string).collect(),
    };
    let out = match out.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", out.join(", ")),
    };
    w.line(4, &format!("OUTPUT = {out}"));
}

fn def_init(w: &mut Writer, params: &[(String, &'static str)]) {
    let mut args = vec![atom("self")];
    for (name, ty) in params {
        args.push(atom(if *ty == "Conv | None" {
            format!("{name}: {ty} = None")
        } else {
            format!("{name}: {ty}")
        }));
    }
    let def = Expr::Call {
        head: "def __init__".to_string(),
        args,
        tail: " -> None".to_string(),
    };
    w.expr(4, "", &def, ":");
    w.line(8, "super().__init__()");
}

/// One block class and its path class.
fn write_block(w: &mut Writer, net: &str, form: &str, kind: &Kind, name: &str, class: &BlockClass) {
    if let Some(path) = &class.path {
        w.blank();
        w.blank();
        w.line(0, &format!("class {name}Path(nn.Module):"));
        w.doc(
            4,
            &[format!(
                "One of the paths of a `{}` block (paper Fig. 3a/3b).",
                kind.template
            )],
        );
        w.blank();
        let params: Vec<(String, &'static str)> =
            path.params.iter().map(|p| (p.clone(), "Conv")).collect();
        def_init(w, &params);
        for (f, e) in &path.init {
            w.expr(8, &format!("self.{f} = "), e, "");
        }
        w.blank();
        w.line(4, "def forward(self, x: Tensor) -> Tensor:");
        for l in &path.forward {
            w.line(8, l);
        }
    }
    w.blank();
    w.blank();
    w.line(0, &format!("class {name}(nn.Module):"));
    w.doc(
        4,
        &[format!(
            "A `{}` block of `{net}` ({form} form).",
            kind.template
        )],
    );
    w.blank();
    def_init(w, &class.params);
    for (f, init) in &class.init {
        match (init, &class.path) {
            (Init::Module(e), _) => w.expr(8, &format!("self.{f} = "), e, ""),
            (Init::Paths, Some(path)) => {
                w.line(8, "self.paths = nn.ModuleList()");
                w.line(8, &format!("for {} in range(paths):", path.index));
                for (e, prefix) in &path.build {
                    w.expr(12, prefix, e, "");
                }
            }
            (Init::Paths, None) => unreachable!("pytorch: paths without a path class"),
        }
    }
    if kind.downsample {
        w.line(8, "self.downsample = None");
        w.line(8, "if downsample is not None:");
        let seq = call(
            "nn.Sequential",
            vec![
                atom("downsample.module()"),
                atom("nn.BatchNorm2d(downsample.cout)"),
            ],
        );
        w.expr(12, "self.downsample = ", &seq, "");
    }
    w.blank();
    w.line(4, "def forward(self, x: Tensor) -> Tensor:");
    for (i, l) in &class.forward {
        w.line(8 + 4 * i, l);
    }
}

/// One network: its block classes, then the network class.
fn write_network(w: &mut Writer, c: &Compiled, origin: &str) {
    let g = &c.graph;
    let net = class_name(&c.model.name);
    let (kinds, kind_of) = blocks::kinds(g);
    let names = blocks::kind_names(&net, &kinds);
    let classes: Vec<BlockClass> = kinds
        .iter()
        .zip(&names)
        .map(|(k, name)| block_class(g, k, name))
        .collect();
    for ((kind, name), class) in kinds.iter().zip(&names).zip(&classes) {
        write_block(w, &net, c.model.form.as_str(), kind, name, class);
    }

    // The network's attributes and forward pass, in node order.
    let mut init: Vec<(String, Expr)> = Vec::new();
    let mut forward: Vec<String> = Vec::new();
    let mut done_stage = vec![false; g.stages.len()];
    for (n, node) in g.nodes() {
        if let Some(b) = node.block {
            let si = g.blocks[b].stage;
            if done_stage[si] {
                continue;
            }
            done_stage[si] = true;
            let stage = &g.stages[si].name;
            let blocks: Vec<Expr> = (0..g.blocks.len())
                .filter(|&b| g.blocks[b].stage == si)
                .map(|b| {
                    let k = kind_of[b];
                    call(names[k].clone(), block_args(g, b, &classes[k]))
                })
                .collect();
            init.push((stage.clone(), call("nn.Sequential", blocks)));
            forward.push(format!("x = self.{stage}(x)"));
            continue;
        }
        let f = &node.path;
        let module = match node.op {
            Op::Input { .. } => continue,
            Op::Conv { .. } => conv_module(&g.conv(n).expect("a conv")),
            Op::BatchNorm => atom(format!("nn.BatchNorm2d({})", node.shape.c)),
            Op::Relu => atom("nn.ReLU(inplace=True)"),
            Op::MaxPool {
                kernel,
                stride,
                pad,
            } => {
                let mut args = vec![atom(format!("kernel_size={}", pair(kernel)))];
                args.push(atom(format!("stride={stride}")));
                if pad != (0, 0) {
                    args.push(atom(format!("padding={}", pair(pad))));
                }
                call("nn.MaxPool2d", args)
            }
            Op::GlobalAvgPool => atom("nn.AdaptiveAvgPool2d((1, 1))"),
            Op::Linear { out, bias } => {
                let fin = g.input_shape(n).numel().unwrap_or(0);
                forward.push("x = torch.flatten(x, 1)".to_string());
                let mut args = vec![atom(fin.to_string()), atom(out.to_string())];
                if !bias {
                    args.push(atom("bias=False"));
                }
                call("nn.Linear", args)
            }
            Op::Add | Op::Concat | Op::Slice { .. } => {
                unreachable!("pytorch: {} outside a block", node.op.kind())
            }
        };
        if !init.iter().any(|(name, _)| name == f) {
            init.push((f.clone(), module));
        }
        forward.push(format!("x = self.{f}(x)"));
    }

    let t = c.report.total;
    let [ic, ih, iw] = c.model.input;
    let output = match g.graph[g.output].op {
        Op::Linear { out, .. } => format!("{out} logits"),
        _ => {
            let [oc, oh, ow] = c.output();
            format!("a {oc}x{oh}x{ow} map")
        }
    };
    w.blank();
    w.blank();
    w.line(0, &format!("class {net}(nn.Module):"));
    w.doc(
        4,
        &[
            format!(
                "`{}` from {origin} ({} form).",
                c.model.name,
                c.model.form.as_str()
            ),
            format!(
                "{} parameters and {} multiply-adds per {ic}x{ih}x{iw} image; output: {output}.",
                crate::cost::grouped(t.params),
                crate::cost::grouped(t.macs),
            ),
        ],
    );
    w.blank();
    constants(w, c);
    w.blank();
    w.line(4, "def __init__(self) -> None:");
    w.line(8, "super().__init__()");
    for (f, e) in &init {
        w.expr(8, &format!("self.{f} = "), e, "");
    }
    w.blank();
    w.line(8, "# torchvision's initialisation.");
    w.line(8, "for m in self.modules():");
    w.line(12, "if isinstance(m, nn.Conv2d):");
    w.line(
        16,
        "nn.init.kaiming_normal_(m.weight, mode=\"fan_out\", nonlinearity=\"relu\")",
    );
    w.line(12, "elif isinstance(m, nn.BatchNorm2d):");
    w.line(16, "nn.init.constant_(m.weight, 1)");
    w.line(16, "nn.init.constant_(m.bias, 0)");
    w.blank();
    w.line(4, "def forward(self, x: Tensor) -> Tensor:");
    for l in &forward {
        w.line(8, l);
    }
    w.line(8, "return x");
}

/// The network class's name: the Rust target's type name, unless Python or the module already
/// gives that name a meaning (`None`, `Conv`, ...), which gets `Net` appended.
pub fn class_name(network: &str) -> String {
    let name = blocks::type_name(network);
    match name.as_str() {
        "None" | "True" | "False" | "Conv" | "NamedTuple" | "Tensor" => format!("{name}Net"),
        _ => name,
    }
}

/// The `Conv` value type every block class takes its geometry in.
const CONV: &str = r#"class Conv(NamedTuple):
    """A convolution's geometry, as archc computed it."""

    cin: int
    cout: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: int | tuple[int, int] = 0
    groups: int = 1
    bias: bool = False

    def module(self) -> nn.Conv2d:
        return nn.Conv2d(
            self.cin,
            self.cout,
            self.kernel,
            stride=self.stride,
            padding=self.padding,
            groups=self.groups,
            bias=self.bias,
        )
"#;

/// A Python module for the networks of one spec file. `origin` names the spec (and any `--set`
/// overrides) for the docstrings: `` `specs/resnet/resnet50.arch` ``.
pub fn module(nets: &[Compiled], origin: &str) -> String {
    let mut w = Writer::default();
    let names: Vec<String> = nets
        .iter()
        .map(|c| format!("`{}`", class_name(&c.model.name)))
        .collect();
    w.doc(
        0,
        &[
            format!("{} from {origin}, as PyTorch modules.", names.join(", ")),
            "Generated by `archc codegen --target pytorch`: edit the spec, not this file. It \
             needs only torch. Module names are torchvision's, so `state_dict` keys and shapes \
             are torchvision's and archc-runtime's, and checkpoints load in all three."
                .to_string(),
        ],
    );
    w.blank();
    w.line(0, "from typing import NamedTuple");
    w.blank();
    // `torch.` is needed for the fc's flatten and the paths' merge.
    let torch = nets.iter().any(|c| {
        c.graph
            .nodes()
            .any(|(_, n)| matches!(n.op, Op::Linear { .. }) || n.role == Role::Merge)
    });
    if torch {
        w.line(0, "import torch");
    }
    w.line(0, "from torch import Tensor, nn");
    w.blank();
    w.blank();
    w.out.push_str(CONV);
    for c in nets {
        write_network(&mut w, c, origin);
    }
    w.out
}
