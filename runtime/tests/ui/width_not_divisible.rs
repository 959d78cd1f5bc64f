// The group width (100) is not a multiple of the cardinality (32).
archc_runtime::resnext! {
    pub struct Width = "../../../../runtime/tests/ui/specs/width.arch";
}

fn main() {}
