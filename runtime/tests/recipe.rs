//! Recipes: the shipped ones parse to the paper's figures; bad ones fail with a location.

use archc_runtime::recipe::{AugmentKind, Precision, Recipe, Schedule};
mod common;

#[test]
fn shipped_recipes_are_the_papers() {
    let dir = common::root().join("recipes");
    let c = Recipe::from_file(dir.join("cifar10.toml")).unwrap();
    assert_eq!((c.epochs, c.batch), (300, 128));
    assert_eq!((c.lr.base, c.optimizer.momentum), (0.1, 0.9));
    assert_eq!(c.optimizer.weight_decay, 5e-4);
    assert_eq!(*c.lr.schedule.get_ref(), Schedule::Step);
    assert_eq!(c.data.augment, AugmentKind::PadCrop);
    assert_eq!(c.data.pad, 4);
    // ÷10 at 150 and 225.
    assert_eq!(c.lr_at(149.99), 0.1);
    assert!((c.lr_at(150.0) - 0.01).abs() < 1e-12);
    assert!((c.lr_at(224.0) - 0.01).abs() < 1e-12);
    assert!((c.lr_at(225.0) - 0.001).abs() < 1e-12);

    let i = Recipe::from_file(dir.join("imagenet.toml")).unwrap();
    assert_eq!(
        (i.batch, i.lr.base, i.optimizer.weight_decay),
        (256, 0.1, 1e-4)
    );
    assert_eq!(i.data.augment, AugmentKind::RandomResizedCrop);
    // ÷10 every 30 epochs.
    assert_eq!(i.lr_at(29.9), 0.1);
    assert!((i.lr_at(30.0) - 0.01).abs() < 1e-12);
    assert!((i.lr_at(65.0) - 0.001).abs() < 1e-12);

    let d = Recipe::from_file(dir.join("digits.toml")).unwrap();
    assert_eq!(d.precision, Precision::Fp32);
    // Warm-up from 0, then cosine to 0.
    assert_eq!(d.lr_at(0.0), 0.0);
    assert!((d.lr_at(0.5) - d.lr.base / 2.0).abs() < 1e-12);
    assert!((d.lr_at(1.0) - d.lr.base).abs() < 1e-12);
    assert!(d.lr_at(d.epochs as f64) < 1e-12);
}

fn error(text: &str) -> (String, Option<(usize, usize)>) {
    let e = Recipe::from_str_named(text, "r.toml").unwrap_err();
    (e.message, e.location)
}

#[test]
fn recipe_errors_have_a_location() {
    // A wrong type.
    let (m, at) = error("epochs = 3\nbatch = \"many\"\n");
    assert_eq!(at, Some((2, 9)), "{m}");
    assert!(m.starts_with("r.toml:2:9: "), "{m}");
    assert!(
        m.contains("batch = \"many\"") && m.contains("^^^^^^"),
        "{m}"
    );
    // An unknown key, in a table.
    let (m, at) = error("[optimizer]\nmomentum = 0.9\nnestrov = true\n");
    assert_eq!(at.map(|a| a.0), Some(3), "{m}");
    assert!(m.contains("nestrov"), "{m}");
    // A value out of range.
    let (m, at) = error("[lr]\nbase = -0.1\n");
    assert_eq!(at, Some((2, 8)), "{m}");
    assert!(m.contains("positive"), "{m}");
    let (m, at) = error("[optimizer]\nmomentum = 1.5\n");
    assert_eq!(at, Some((2, 12)), "{m}");
    // An unknown enum value.
    let (m, at) = error("precision = \"fp8\"\n");
    assert_eq!(at, Some((1, 13)), "{m}");
    assert!(m.contains("fp32") && m.contains("bf16"), "{m}");
    // Checks across keys point at the key's value.
    let (m, at) = error("[lr]\nschedule = \"step\"\nmilestones = [20, 10]\n");
    assert_eq!(at, Some((3, 14)), "{m}");
    assert!(m.contains("increasing"), "{m}");
    let (m, at) = error("[lr]\nschedule = \"step\"\n");
    assert_eq!(at, Some((2, 12)), "{m}");
    assert!(m.contains("milestones"), "{m}");
    // Broken TOML.
    let (m, at) = error("epochs = 3\n[lr\n");
    assert_eq!(at.map(|a| a.0), Some(2), "{m}");
    // A missing file names itself.
    let e = Recipe::from_file("no/such/recipe.toml").unwrap_err();
    assert!(e.message.contains("no/such/recipe.toml"), "{}", e.message);
}

#[test]
fn a_recipe_round_trips_through_toml() {
    let dir = common::root().join("recipes");
    for f in ["cifar10.toml", "imagenet.toml", "digits.toml"] {
        let r = Recipe::from_file(dir.join(f)).unwrap();
        let again = Recipe::from_str_named(&r.to_toml(), f).unwrap();
        assert_eq!(again.epochs, r.epochs, "{f}");
        assert_eq!(again.lr.base, r.lr.base, "{f}");
        assert_eq!(
            again.lr.milestones.get_ref(),
            r.lr.milestones.get_ref(),
            "{f}"
        );
        assert_eq!(again.data, r.data, "{f}");
        for e in [0.0, 0.5, 31.0, 151.0, 226.0] {
            assert_eq!(again.lr_at(e), r.lr_at(e), "{f} at {e}");
        }
    }
}
