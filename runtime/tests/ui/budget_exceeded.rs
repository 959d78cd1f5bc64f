// Both budgets of the spec are broken, and one set in the macro too: all are reported at once.
archc_runtime::resnext! {
    pub struct Over = "../../../../runtime/tests/ui/specs/over_budget.arch" where activations <= 10;
}

fn main() {}
