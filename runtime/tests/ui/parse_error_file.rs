// A syntax error in a spec file: the message names the file, line and column.
archc_runtime::resnext! {
    pub struct Broken = "../../../../runtime/tests/ui/specs/parse_error.arch";
}

fn main() {}
