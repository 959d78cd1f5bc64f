// A syntax error in an inline spec: the error points at the token itself.
archc_runtime::resnext! {
    pub struct Broken {
        network broken {
            input 3x32x32
            classes 10
            stem { conv 3x3 => 16 }
            head { avgpool; fc -> classes }
        }
    }
}

fn main() {}
