//! A small, seedable random generator (SplitMix64). Every random choice of the data pipeline
//! derives from (seed, epoch, image index) through [`Rng::derive`], so results do not depend on
//! thread scheduling and a resumed run draws exactly what an uninterrupted one would.

/// SplitMix64 (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for one purpose, from a seed and a path of indices.
    pub(crate) fn derive(seed: u64, path: &[u64]) -> Rng {
        let mut r = Rng::new(seed ^ 0x5851_f42d_4c95_7f2d);
        for &p in path {
            let x = r.next_u64();
            r = Rng::new(x ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        r
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in 0..=n.
    pub(crate) fn below_incl(&mut self, n: usize) -> usize {
        (self.next_u64() % (n as u64 + 1)) as usize
    }

    /// A fair coin.
    pub(crate) fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// A random permutation of 0..n (Fisher–Yates).
    pub(crate) fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below_incl(i);
            v.swap(i, j);
        }
        v
    }
}
