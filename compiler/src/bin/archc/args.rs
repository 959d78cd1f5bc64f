//! Options and value parsers every command shares.

use archc::cost::convention::Convention;
use archc::{Overrides, Spec};
use clap::ValueEnum;

/// Options every command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Override a parameter (or `form`, `classes`): `--set C=8 --set d=14`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set, global = true)]
    pub set: Vec<(String, String)>,
    /// Cost the network at another input size, e.g. `3x320x320`.
    #[arg(long, value_name = "CxHxW", value_parser = parse_dims, global = true)]
    pub input: Option<[u64; 3]>,
    /// Only this network of each spec (default: every network the file defines).
    #[arg(long, global = true)]
    pub network: Option<String>,
}

impl Common {
    /// `--set` and `--input` as overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            set: self.set.clone(),
            input: self.input,
            ..Overrides::default()
        }
    }

    /// The networks to compile: `--network`, or every network the spec defines.
    pub fn networks(&self, spec: &Spec) -> Vec<String> {
        match &self.network {
            Some(n) => vec![n.clone()],
            None => spec.networks().iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A spec file and the common options: the arguments of `graph` and `expand`.
#[derive(clap::Args, Debug)]
pub struct SpecArgs {
    /// Spec file.
    pub spec: std::path::PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// `--format` of `check`, `solve` and `explain`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text for people.
    Text,
    /// JSON (see README.md).
    Json,
}

/// Parses `--set KEY=VALUE`.
fn parse_set(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has no key"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// Parses `--input CxHxW`.
fn parse_dims(s: &str) -> Result<[u64; 3], String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    let nums: Result<Vec<u64>, _> = parts.iter().map(|p| p.trim().parse::<u64>()).collect();
    match nums {
        Ok(n) if n.len() == 3 && n.iter().all(|v| *v > 0) => Ok([n[0], n[1], n[2]]),
        _ => Err(format!(
            "`{s}` is not CxHxW with positive integers, e.g. 3x224x224"
        )),
    }
}

/// Parses `--convention`.
pub fn parse_convention(s: &str) -> Result<Convention, String> {
    Convention::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Convention::ALL.iter().map(|c| c.name()).collect();
        format!("`{s}` is not a convention; use one of {}", names.join(", "))
    })
}
