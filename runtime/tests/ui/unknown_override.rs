// `where` names a parameter the spec does not have.
archc_runtime::resnext! {
    pub struct Net = "../../../../specs/resnext/resnext50_32x4d.arch" where C = 8, cardinality = 8;
}

fn main() {}
