// A spec file that does not exist.
archc_runtime::resnext! {
    pub struct Missing = "specs/no/such/file.arch";
}

fn main() {}
