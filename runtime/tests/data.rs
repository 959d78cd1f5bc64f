//! The data loaders on files generated here in the exact formats: CIFAR-10 and CIFAR-100
//! binary records, and ImageFolder trees of PNG and JPEG files. Shapes, labels, augmentation
//! bounds, determinism, and the errors bad files get.

use archc_runtime::data::{self, Augment, DataError, Image, Loader, Transform};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("archc-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Pixel (c, y, x) of CIFAR record `i`: a value that tells them all apart (mod 256).
fn px(i: usize, c: usize, y: usize, x: usize) -> u8 {
    ((i * 7 + c * 50 + y * 3 + x) % 256) as u8
}

fn cifar_record(i: usize, labels: &[u8]) -> Vec<u8> {
    let mut r = labels.to_vec();
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                r.push(px(i, c, y, x));
            }
        }
    }
    r
}

fn write_cifar10(dir: &Path, train: usize, test: usize) {
    let mut f = Vec::new();
    for i in 0..train {
        f.extend(cifar_record(i, &[(i % 10) as u8]));
    }
    std::fs::write(dir.join("data_batch_1.bin"), f).unwrap();
    let mut f = Vec::new();
    for i in 0..test {
        f.extend(cifar_record(100 + i, &[(9 - i % 10) as u8]));
    }
    std::fs::write(dir.join("test_batch.bin"), f).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
}

fn plain(size: [usize; 2], augment: Augment) -> Transform {
    Transform {
        size,
        augment,
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
        crop: 1.0,
    }
}

#[test]
fn cifar10_records_shapes_and_labels() {
    let dir = temp("c10");
    write_cifar10(&dir, 20, 7);
    let s = data::open(&dir, 3).unwrap();
    assert_eq!(s.format, "cifar-10");
    assert_eq!((s.train.len(), s.test.len()), (20, 7));
    assert_eq!(s.train.classes()[3], "cat");
    assert_eq!(s.train.label(13), 3);
    assert_eq!(s.test.label(2), 7);
    // Planar records become interleaved pixels.
    let img = s.train.image(5).unwrap();
    assert_eq!((img.c, img.h, img.w), (3, 32, 32));
    assert_eq!(img.data[(4 * 32 + 9) * 3 + 2], px(5, 2, 4, 9));
    // Without augmentation the loader gives back the exact pixels, in order, as C×H×W.
    let train = Arc::new(s.train);
    let loader = Loader::new(train.clone(), plain([32, 32], Augment::None), 8).workers(3);
    assert_eq!(loader.len(), 3);
    let batches: Vec<_> = loader.epoch(0, 0).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].images.size(), [8, 3, 32, 32]);
    assert_eq!(batches[2].images.size(), [4, 3, 32, 32]);
    let labels: Vec<i64> = batches
        .iter()
        .flat_map(|b| Vec::<i64>::try_from(&b.labels).unwrap())
        .collect();
    assert_eq!(labels, (0..20).map(|i| (i % 10) as i64).collect::<Vec<_>>());
    let v = batches[1].images.double_value(&[2, 1, 4, 9]);
    assert!((v - px(10, 1, 4, 9) as f64 / 255.0).abs() < 1e-6);
    // Shuffled: a permutation that depends on the seed and epoch, not on the worker count.
    let order = |workers: usize, seed: u64, epoch: u64| -> Vec<i64> {
        let l = Loader::new(train.clone(), plain([32, 32], Augment::None), 4)
            .shuffle(seed)
            .workers(workers);
        l.epoch(epoch, 0)
            .flat_map(|b| {
                let b = b.unwrap();
                // Identify the image by its first pixel.
                (0..b.images.size()[0])
                    .map(|k| (b.images.double_value(&[k, 0, 0, 0]) * 255.0).round() as i64)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let a = order(0, 1, 0);
    assert_eq!(a, order(3, 1, 0));
    assert_ne!(a, order(2, 1, 1));
    assert_ne!(a, order(2, 2, 0));
    let mut sorted = a.clone();
    sorted.sort();
    let mut all: Vec<i64> = (0..20).map(|i| px(i, 0, 0, 0) as i64).collect();
    all.sort();
    assert_eq!(sorted, all);
    // Starting an epoch at batch 2 gives that epoch's batches from 2 on.
    let l = Loader::new(train, plain([32, 32], Augment::None), 4).shuffle(1);
    let full: Vec<_> = l.epoch(3, 0).map(|b| b.unwrap().images).collect();
    let tail: Vec<_> = l.epoch(3, 2).map(|b| b.unwrap().images).collect();
    assert_eq!(tail.len(), full.len() - 2);
    assert!(tail[0].equal(&full[2]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = temp("c100");
    let mut f = Vec::new();
    for i in 0..6 {
        f.extend(cifar_record(i, &[(i % 20) as u8, (50 + i) as u8]));
    }
    std::fs::write(dir.join("train.bin"), &f).unwrap();
    std::fs::write(dir.join("test.bin"), &f[..2 * 3074]).unwrap();
    let s = data::open(&dir, 3).unwrap();
    assert_eq!(s.format, "cifar-100");
    assert_eq!(s.train.classes().len(), 100);
    assert_eq!((s.train.len(), s.test.len()), (6, 2));
    assert_eq!(s.train.label(4), 54);
    assert_eq!(s.train.image(4).unwrap().data[0], px(4, 0, 0, 0));
    // 100 classes do not fit a 10-way network.
    let e = s.train.check_fits(10, 3).unwrap_err();
    assert!(
        matches!(e, DataError::TooManyClasses { found: 100, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("train.bin"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_cifar_file_is_named() {
    let dir = temp("trunc");
    write_cifar10(&dir, 4, 2);
    let p = dir.join("data_batch_1.bin");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = data::open(&dir, 3).unwrap_err().to_string();
    assert!(
        e.contains("data_batch_1.bin") && e.contains("truncated"),
        "{e}"
    );
    // A label outside the classes, too.
    write_cifar10(&dir, 4, 2);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[3073] = 12;
    std::fs::write(&p, bytes).unwrap();
    let e = data::open(&dir, 3).unwrap_err().to_string();
    assert!(
        e.contains("data_batch_1.bin") && e.contains("label 12"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn save_image(path: &Path, w: u32, h: u32, seed: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x * 13 + seed) % 256) as u8,
            ((y * 7 + seed) % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

fn image_folder(dir: &Path) {
    for (split, n) in [("train", 3), ("val", 1)] {
        for class in ["dog", "cat", "bird"] {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                save_image(&d.join(format!("{i}.{ext}")), 40 + 7 * i, 30 + 5 * i, i);
            }
        }
    }
}

#[test]
fn image_folder_classes_shapes_and_augmentation() {
    let dir = temp("folder");
    image_folder(&dir);
    let s = data::open(&dir, 3).unwrap();
    assert_eq!(s.format, "image-folder");
    assert_eq!(s.train.classes(), ["bird", "cat", "dog"]);
    assert_eq!((s.train.len(), s.test.len()), (9, 3));
    assert_eq!(s.train.label(0), 0);
    assert_eq!(s.train.label(8), 2);
    let img = s.train.image(1).unwrap();
    assert_eq!((img.c, img.h, img.w), (3, 35, 47));
    // Gray decoding for a one-channel network.
    let gray = data::open(&dir, 1).unwrap();
    assert_eq!(gray.test.image(0).unwrap().c, 1);
    // Evaluation: resize and centre crop to the input size; random-resized crop in training.
    let train = Arc::new(s.train);
    for augment in [
        Augment::None,
        Augment::RandomResizedCrop {
            scale: (0.08, 1.0),
            ratio: (0.75, 4.0 / 3.0),
            flip: true,
        },
        Augment::PadCrop { pad: 2, flip: true },
    ] {
        let t = Transform {
            crop: 0.875,
            ..plain([16, 24], augment.clone())
        };
        let l = Loader::new(train.clone(), t, 4).shuffle(3).workers(2);
        let batches: Vec<_> = l.epoch(0, 0).map(Result::unwrap).collect();
        assert_eq!(batches.len(), 2, "{augment:?}");
        for b in &batches {
            assert_eq!(b.images.size(), [4, 3, 16, 24], "{augment:?}");
            let (lo, hi) = (
                b.images.min().double_value(&[]),
                b.images.max().double_value(&[]),
            );
            assert!(lo >= 0.0 && hi <= 1.0 && hi > lo, "{augment:?}: {lo}..{hi}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pad_crop_and_flip_stay_in_bounds() {
    // A 6×6 gray image whose pixel (y, x) is 10·y + x + 1 (never 0).
    let img = Image {
        c: 1,
        h: 6,
        w: 6,
        data: (0..36).map(|i| (10 * (i / 6) + i % 6 + 1) as u8).collect(),
    };
    let t = Transform {
        size: [6, 6],
        augment: Augment::PadCrop { pad: 2, flip: true },
        mean: vec![0.0],
        std: vec![1.0 / 255.0],
        crop: 1.0,
    };
    let (mut flipped, mut shifted) = (0, 0);
    for seed in 0..200 {
        let out = t.apply(&img, seed);
        assert_eq!(out, t.apply(&img, seed), "deterministic");
        let v = |y: usize, x: usize| out[y * 6 + x].round() as i32;
        // The output is the input moved by at most 2 pixels each way (and maybe mirrored): one
        // offset explains every non-zero pixel; the rest is padding.
        let consistent = |mirror: bool| -> Option<(i32, i32)> {
            let mut off = None;
            for y in 0..6 {
                for x in 0..6 {
                    let p = v(y, x);
                    if p == 0 {
                        continue;
                    }
                    let (sy, sx) = ((p - 1) / 10, (p - 1) % 10);
                    let xx = if mirror { 5 - x as i32 } else { x as i32 };
                    let o = (sy - y as i32, sx - xx);
                    if *off.get_or_insert(o) != o {
                        return None;
                    }
                }
            }
            off
        };
        let ((dy, dx), mirrored) = consistent(false)
            .map(|o| (o, false))
            .or(consistent(true).map(|o| (o, true)))
            .unwrap_or_else(|| panic!("seed {seed}: not a shifted copy: {out:?}"));
        assert!(
            dy.abs() <= 2 && dx.abs() <= 2,
            "seed {seed}: offset {dy}, {dx}"
        );
        let zeros = out.iter().filter(|v| **v == 0.0).count();
        let kept = (6 - dy.unsigned_abs() as usize) * (6 - dx.unsigned_abs() as usize);
        assert_eq!(36 - zeros, kept, "seed {seed}: padding");
        flipped += mirrored as usize;
        shifted += (dy != 0 || dx != 0) as usize;
    }
    assert!(flipped > 50 && flipped < 150, "{flipped} of 200 flipped");
    assert!(shifted > 150, "{shifted} of 200 shifted");
}

#[test]
fn bad_image_folders_name_the_file() {
    let dir = temp("bad");
    image_folder(&dir);
    // A text file with an image's extension.
    let bad = dir.join("train/cat/broken.png");
    std::fs::write(&bad, "not an image at all").unwrap();
    let e = data::open(&dir, 3).unwrap_err().to_string();
    assert!(
        e.contains("broken.png") && e.contains("not a readable image"),
        "{e}"
    );
    std::fs::remove_file(&bad).unwrap();
    // A PNG cut short: the header reads, the pixels do not; the loader names the file.
    let cut = dir.join("train/cat/cut.png");
    save_image(&cut, 64, 64, 9);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let s = data::open(&dir, 3).unwrap();
    let l = Loader::new(Arc::new(s.train), plain([8, 8], Augment::None), 2).workers(2);
    let e = l.epoch(0, 0).find_map(Result::err).expect("an error");
    assert!(e.to_string().contains("cut.png"), "{e}");
    std::fs::remove_file(&cut).unwrap();
    // An empty class folder.
    std::fs::create_dir_all(dir.join("train/zebra")).unwrap();
    let e = data::open(&dir, 3).unwrap_err().to_string();
    assert!(
        e.contains("zebra") && e.contains("empty class folder"),
        "{e}"
    );
    std::fs::remove_dir_all(dir.join("train/zebra")).unwrap();
    // A stray non-image file.
    std::fs::write(dir.join("train/dog/notes.txt"), "x").unwrap();
    let e = data::open(&dir, 3).unwrap_err().to_string();
    assert!(e.contains("notes.txt"), "{e}");
    std::fs::remove_file(dir.join("train/dog/notes.txt")).unwrap();
    // A validation class unknown to training.
    std::fs::create_dir_all(dir.join("val/emu")).unwrap();
    save_image(&dir.join("val/emu/0.png"), 8, 8, 0);
    let e = data::open(&dir, 3).unwrap_err().to_string();
    assert!(e.contains("emu"), "{e}");
    std::fs::remove_dir_all(dir.join("val/emu")).unwrap();
    // No layout at all.
    let e = data::open(dir.join("train/dog"), 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no known data layout"), "{e}");
    // More classes than the network has.
    let s = data::open(&dir, 3).unwrap();
    let e = s.train.check_fits(2, 3).unwrap_err().to_string();
    assert!(e.contains("3 classes") && e.contains("2 outputs"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
