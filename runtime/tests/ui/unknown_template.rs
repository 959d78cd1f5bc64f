// A stage that names a template nobody defined.
archc_runtime::resnext! {
    pub struct Net {
        network net {
            input 3x32x32
            classes 10
            stem { conv 3x3 -> 16 }
            block basic(out) {
                conv 3x3/stride -> out
                conv 3x3 -> out
            }
            stages bottleneck(out = 16) {
                s1: depth 1
            }
            head { avgpool; fc -> classes }
        }
    }
}

fn main() {
    // Uses of the type compile (a stub is emitted): only the spec error is reported.
    let vs = archc_runtime::tch::nn::VarStore::new(archc_runtime::tch::Device::Cpu);
    let _net = Net::new(&vs.root());
}
