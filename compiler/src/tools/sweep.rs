//! `archc sweep`: every point of a grid over parameters (`C` in {1, 2, 4, 8} × `d` in 1..64),
//! each compiled exactly, as a table (text, CSV, JSON) and an SVG plot of parameters and compute
//! against the swept parameter, with the budget lines drawn and the feasible points marked.
//!
//! A grid axis is a spec parameter, `form`, `classes`, or `res`: the input's height and width
//! (`224` for 224×224, or `320x480`). Points that differ only in `res` share one compile; their
//! costs come from [`crate::cost::resolution::recost`], which re-infers the spatial sizes only.

use crate::cost::budget::{self, Figure, Figures, Limit, Verdict};
use crate::cost::convention::Convention;
use crate::cost::grouped;
use crate::expand::Overrides;
use crate::{Compiled, Diagnostic, Failure, Spec};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;

/// The most points a sweep may have.
pub const MAX_POINTS: usize = 100_000;

/// Parses a value list: `1,2,4`, `1..64` (inclusive), `1..=64`, `8..64:8` (a step), mixed
/// (`1,2,8..16:4`), or words (`grouped,split`); `res` values may be `HxW`.
pub fn parse_values(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("`{s}` has an empty value"));
        }
        if let Some((a, rest)) = part.split_once("..") {
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            let (b, step) = match rest.split_once(':') {
                Some((b, step)) => (b, step),
                None => (rest, "1"),
            };
            let num = |t: &str| {
                t.trim()
                    .replace('_', "")
                    .parse::<u64>()
                    .map_err(|_| format!("`{part}`: `{t}` is not a non-negative integer"))
            };
            let (a, b, step) = (num(a)?, num(b)?, num(step)?);
            if step == 0 {
                return Err(format!("`{part}`: the step must be at least 1"));
            }
            if a > b {
                return Err(format!("`{part}`: the range is empty ({a} > {b})"));
            }
            let n = (b - a) / step + 1;
            if n as usize > MAX_POINTS || out.len() + n as usize > MAX_POINTS {
                return Err(format!("`{part}` has more than {MAX_POINTS} values"));
            }
            let mut v = a;
            while v <= b {
                out.push(v.to_string());
                match v.checked_add(step) {
                    Some(x) => v = x,
                    None => break,
                }
            }
        } else {
            out.push(part.to_string());
        }
    }
    Ok(out)
}

/// Parses `KEY=VALUES` (see [`parse_values`]).
pub fn parse_axis(s: &str) -> Result<(String, Vec<String>), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUES, e.g. C=1,2,4 or d=1..64"))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("`{s}` has no key"));
    }
    Ok((k.to_string(), parse_values(v)?))
}

/// Parses a `res` value: `224` or `320x480`.
pub fn parse_res(s: &str) -> Option<(u64, u64)> {
    let parse = |t: &str| t.trim().parse::<u64>().ok().filter(|v| *v > 0);
    match s.split_once(['x', 'X']) {
        Some((h, w)) => Some((parse(h)?, parse(w)?)),
        None => parse(s).map(|v| (v, v)),
    }
}

/// One grid point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    /// The axis values, in axis order.
    pub values: Vec<String>,
    /// The figures, when the point compiles.
    pub figures: Option<Figures>,
    /// Every budget's verdict.
    pub budgets: Vec<Verdict>,
    /// Whether every budget holds.
    pub feasible: bool,
    /// Why the point does not compile.
    pub error: Option<String>,
}

/// A swept grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sweep {
    /// The network.
    pub network: String,
    /// The convention of macs, flops and activations.
    pub convention: Convention,
    /// The axes' names, in order.
    pub axes: Vec<String>,
    /// The budgets checked at each point.
    pub budgets: Vec<Limit>,
    /// Every point, the last axis varying fastest.
    pub points: Vec<Point>,
}

/// Compiles every point of the grid. `Err` for a grid that cannot be swept (an unknown
/// parameter, too many points, a bad `res` value).
pub fn sweep(
    spec: &Spec,
    network: &str,
    base: &Overrides,
    axes: &[(String, Vec<String>)],
    budgets: &[Limit],
    conv: Convention,
) -> Result<Sweep, Failure> {
    let fail = |msg: String| Failure {
        sources: spec.sources.clone(),
        diagnostics: vec![Diagnostic::new("archc::sweep", msg)],
    };
    if axes.is_empty() {
        return Err(fail(
            "the grid has no axis: add --grid KEY=VALUES".to_string(),
        ));
    }
    for (i, (k, _)) in axes.iter().enumerate() {
        if axes[..i].iter().any(|(j, _)| j == k) {
            return Err(fail(format!("`{k}` is given twice in the grid")));
        }
    }
    let n = axes
        .iter()
        .try_fold(1usize, |acc, (_, v)| acc.checked_mul(v.len()))
        .filter(|n| *n <= MAX_POINTS)
        .ok_or_else(|| fail(format!("the grid has more than {MAX_POINTS} points")))?;
    let res_axis = axes.iter().position(|(k, _)| k == "res");
    if let Some(i) = res_axis {
        if let Some(bad) = axes[i].1.iter().find(|v| parse_res(v).is_none()) {
            return Err(fail(format!(
                "res={bad}: a resolution is N (N×N) or HxW with positive integers"
            )));
        }
    }
    let assignments = crate::tools::solve::assignments(axes);
    let mut compiled: HashMap<Vec<(String, String)>, Result<Compiled, String>> = HashMap::new();
    let mut points = Vec::with_capacity(n);
    for a in assignments {
        let set: Vec<(String, String)> = a.iter().filter(|(k, _)| k != "res").cloned().collect();
        if !compiled.contains_key(&set) {
            let overrides = super::with_set(base, &set);
            let r = match spec.compile(network, &overrides) {
                Ok(c) => Ok(c),
                Err(f) if f.is_fatal() => return Err(f),
                Err(f) => Err(f
                    .diagnostics
                    .first()
                    .map(|d| d.message.clone())
                    .unwrap_or_default()),
            };
            compiled.insert(set.clone(), r);
        }
        let base_c = &compiled[&set];
        let at = match (base_c, res_axis) {
            (Ok(c), Some(i)) => {
                let (h, w) = parse_res(&a[i].1).expect("checked");
                crate::cost::resolution::recost(c, [c.model.input[0], h, w])
                    .map(Some)
                    .map_err(|d| d.message)
            }
            (Ok(_), None) => Ok(None),
            (Err(e), _) => Err(e.clone()),
        };
        let figures = at.and_then(|re| {
            let c = re.as_ref().unwrap_or_else(|| base_c.as_ref().expect("ok"));
            Figures::of(c, conv).map_err(|d| d.message)
        });
        let values = a.iter().map(|(_, v)| v.clone()).collect();
        points.push(match figures {
            Ok(f) => {
                let checks = budget::check(budgets, &f);
                Point {
                    values,
                    feasible: checks.iter().all(|c| c.ok),
                    budgets: checks,
                    figures: Some(f),
                    error: None,
                }
            }
            Err(e) => Point {
                values,
                figures: None,
                budgets: Vec::new(),
                feasible: false,
                error: Some(e),
            },
        });
    }
    Ok(Sweep {
        network: network.to_string(),
        convention: conv,
        axes: axes.iter().map(|(k, _)| k.clone()).collect(),
        budgets: budgets.to_vec(),
        points,
    })
}

const COLUMNS: [Figure; 4] = [
    Figure::Params,
    Figure::Weights,
    Figure::Macs,
    Figure::Activations,
];

pub(crate) fn column_name(f: Figure, conv: Convention) -> String {
    match f {
        Figure::Macs => conv.compute_name().to_string(),
        other => other.name().to_string(),
    }
}

fn verdict(p: &Point) -> String {
    if let Some(e) = &p.error {
        return format!("invalid: {e}");
    }
    let broken: Vec<String> = p
        .budgets
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "{} {} by {}",
                c.limit.figure,
                c.limit.cmp.broken_word(),
                grouped(c.excess)
            )
        })
        .collect();
    if broken.is_empty() {
        "yes".to_string()
    } else {
        format!("no: {}", broken.join(", "))
    }
}

/// The sweep as an aligned text table.
pub fn text(s: &Sweep) -> String {
    let mut o = String::new();
    let conv = s.convention;
    let what = format!("sweep of {} over {}", s.network, s.axes.join(" x "));
    let note = format!("{} points; ", s.points.len());
    super::write_head(&mut o, &what, &note, conv.compute_name(), &s.budgets, conv);
    let widths: Vec<usize> = s
        .axes
        .iter()
        .enumerate()
        .map(|(i, a)| {
            s.points
                .iter()
                .map(|p| p.values[i].len())
                .max()
                .unwrap_or(0)
                .max(a.len())
        })
        .collect();
    let mut h = String::new();
    for (a, w) in s.axes.iter().zip(&widths) {
        let _ = write!(h, "{a:>w$} ");
    }
    for f in COLUMNS {
        let _ = write!(h, "{:>16} ", column_name(f, conv));
    }
    let _ = writeln!(o, "{h} feasible");
    for p in &s.points {
        let mut line = String::new();
        for (v, w) in p.values.iter().zip(&widths) {
            let _ = write!(line, "{v:>w$} ");
        }
        for f in COLUMNS {
            let v = p
                .figures
                .map(|x| grouped(x.get(f)))
                .unwrap_or_else(|| "-".into());
            let _ = write!(line, "{v:>16} ");
        }
        let _ = writeln!(o, "{line} {}", verdict(p));
    }
    let feasible = s.points.iter().filter(|p| p.feasible).count();
    let _ = writeln!(
        o,
        "{feasible} of {} points meet every budget",
        s.points.len()
    );
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The sweep as CSV: one row per point, the axes, every figure, `feasible`, `error`.
pub fn csv(s: &Sweep) -> String {
    let mut o = String::new();
    let mut header: Vec<String> = s.axes.clone();
    header.extend(Figure::ALL.iter().map(|f| f.name().to_string()));
    header.push("feasible".into());
    header.push("error".into());
    let _ = writeln!(
        o,
        "{}",
        header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",")
    );
    for p in &s.points {
        let mut row: Vec<String> = p.values.iter().map(|v| csv_field(v)).collect();
        for f in Figure::ALL {
            row.push(p.figures.map(|x| x.get(f).to_string()).unwrap_or_default());
        }
        row.push(p.feasible.to_string());
        row.push(csv_field(p.error.as_deref().unwrap_or("")));
        let _ = writeln!(o, "{}", row.join(","));
    }
    o
}

/// A series of the plot: the points that share every axis value but `x`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `C=1` (the other axes' values), or the network's name for a one-axis grid.
    pub label: String,
    /// `(x, figures, feasible)` for each point that compiles, in grid order.
    pub points: Vec<(f64, Figures, bool)>,
}

/// The plot's series: one per combination of the axes other than `x`, with `x` numeric (`res`
/// uses the height). `Err` if `x` is not an axis or has non-numeric values.
pub fn series(s: &Sweep, x: &str) -> Result<Vec<Series>, String> {
    let xi = s
        .axes
        .iter()
        .position(|a| a == x)
        .ok_or_else(|| format!("`{x}` is not an axis of the grid ({})", s.axes.join(", ")))?;
    let mut out: Vec<Series> = Vec::new();
    for p in &s.points {
        let xv = if x == "res" {
            parse_res(&p.values[xi]).map(|(h, _)| h as f64)
        } else {
            p.values[xi].parse::<u64>().ok().map(|v| v as f64)
        }
        .ok_or_else(|| format!("`{x}={}` is not a number to plot against", p.values[xi]))?;
        let label: Vec<String> = s
            .axes
            .iter()
            .zip(&p.values)
            .enumerate()
            .filter(|(i, _)| *i != xi)
            .map(|(_, (a, v))| format!("{a}={v}"))
            .collect();
        let label = if label.is_empty() {
            s.network.clone()
        } else {
            label.join(" ")
        };
        let i = match out.iter().position(|se| se.label == label) {
            Some(i) => i,
            None => {
                out.push(Series {
                    label,
                    points: Vec::new(),
                });
                out.len() - 1
            }
        };
        if let Some(f) = p.figures {
            out[i].points.push((xv, f, p.feasible));
        }
    }
    Ok(out)
}
