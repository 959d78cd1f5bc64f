//! Batches on worker threads with prefetch, handed out in order.

use super::rng::Rng;
use super::{DataError, Dataset, Transform};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;
use tch::{Kind, Tensor};

/// Splits a data set into batches of transformed images, decoded and augmented on worker
/// threads.
///
/// Batch `k` of epoch `e` holds the images `order[k·B .. (k+1)·B]`, where `order` is a seeded
/// permutation for `e` (or 0..n without shuffling), and image `i`'s augmentation draws from a
/// generator seeded by (seed, e, i). So the batches do not depend on the number of workers, and
/// an epoch can start at any batch ([`Loader::epoch`]) with exactly the batches it would have
/// had.
#[derive(Debug, Clone)]
pub struct Loader {
    data: Arc<Dataset>,
    transform: Arc<Transform>,
    batch: usize,
    workers: usize,
    prefetch: usize,
    shuffle: Option<u64>,
    drop_last: bool,
}

/// One batch: images `[N, C, H, W]` (float, on the CPU) and labels `[N]` (int64).
#[derive(Debug)]
pub struct Batch {
    /// The images.
    pub images: Tensor,
    /// Their labels.
    pub labels: Tensor,
    /// The batch's index within its epoch.
    pub index: usize,
}

struct Raw {
    images: Vec<f32>,
    labels: Vec<i64>,
    shape: [i64; 3],
}

impl Loader {
    /// A loader over `data` in its order (no shuffling, last partial batch kept: evaluation),
    /// with one worker per available CPU (at most 8) and two batches of prefetch per worker.
    pub fn new(data: Arc<Dataset>, transform: Transform, batch: usize) -> Loader {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Loader {
            data,
            transform: Arc::new(transform),
            batch: batch.max(1),
            workers: cpus.min(8),
            prefetch: 2,
            shuffle: None,
            drop_last: false,
        }
    }

    /// Shuffles every epoch with a permutation seeded by (`seed`, epoch), and drops the last
    /// partial batch (training: a batch of one would break batch-norm).
    pub fn shuffle(mut self, seed: u64) -> Loader {
        self.shuffle = Some(seed);
        self.drop_last = true;
        self
    }

    /// Worker threads; 0 transforms on the calling thread.
    pub fn workers(mut self, n: usize) -> Loader {
        self.workers = n;
        self
    }

    /// Batches each worker keeps ready.
    pub fn prefetch(mut self, n: usize) -> Loader {
        self.prefetch = n.max(1);
        self
    }

    /// The data set.
    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.data.len();
        if self.drop_last {
            n / self.batch
        } else {
            n.div_ceil(self.batch)
        }
    }

    /// Whether an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images of epoch `epoch` in their order.
    fn order(&self, epoch: u64) -> Vec<usize> {
        match self.shuffle {
            Some(seed) => Rng::derive(seed, &[1, epoch]).permutation(self.data.len()),
            None => (0..self.data.len()).collect(),
        }
    }

    /// The batches of epoch `epoch`, starting at batch `start`.
    pub fn epoch(&self, epoch: u64, start: usize) -> Batches {
        let order = Arc::new(self.order(epoch));
        let end = self.len();
        let start = start.min(end);
        let job = Job {
            data: self.data.clone(),
            transform: self.transform.clone(),
            order,
            batch: self.batch,
            seed: self.shuffle.unwrap_or(0),
            epoch,
        };
        if self.workers == 0 {
            return Batches {
                inline: Some(job),
                rx: Vec::new(),
                handles: Vec::new(),
                next: start,
                start,
                end,
            };
        }
        let workers = self.workers.min(end - start).max(1);
        let (mut rx, mut handles) = (Vec::new(), Vec::new());
        for w in 0..workers {
            let (tx, r) = sync_channel(self.prefetch);
            let job = job.clone();
            let handle = std::thread::Builder::new()
                .name(format!("archc-loader-{w}"))
                .spawn(move || {
                    let mut k = start + w;
                    while k < end {
                        let raw = job.make(k);
                        let failed = raw.is_err();
                        if tx.send(raw).is_err() || failed {
                            return;
                        }
                        k += workers;
                    }
                })
                .expect("spawn a loader thread");
            rx.push(r);
            handles.push(handle);
        }
        Batches {
            inline: None,
            rx,
            handles,
            next: start,
            start,
            end,
        }
    }
}

#[derive(Clone)]
struct Job {
    data: Arc<Dataset>,
    transform: Arc<Transform>,
    order: Arc<Vec<usize>>,
    batch: usize,
    seed: u64,
    epoch: u64,
}

impl Job {
    fn make(&self, k: usize) -> Result<Raw, DataError> {
        let ids = &self.order[k * self.batch..((k + 1) * self.batch).min(self.order.len())];
        let mut images = Vec::new();
        let mut labels = Vec::with_capacity(ids.len());
        let [h, w] = self.transform.size;
        let mut c = 0;
        for &i in ids {
            let img = self.data.image(i)?;
            c = img.c;
            let seed = Rng::derive(self.seed, &[2, self.epoch, i as u64]).next_u64();
            images.extend(self.transform.apply(&img, seed));
            labels.push(self.data.label(i));
        }
        Ok(Raw {
            images,
            labels,
            shape: [c as i64, h as i64, w as i64],
        })
    }
}

/// The batches of one epoch ([`Loader::epoch`]). Dropping it stops the workers.
pub struct Batches {
    inline: Option<Job>,
    rx: Vec<Receiver<Result<Raw, DataError>>>,
    handles: Vec<JoinHandle<()>>,
    next: usize,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("next", &self.next)
            .field("end", &self.end)
            .field("workers", &self.rx.len())
            .finish()
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let k = self.next;
        self.next += 1;
        let raw = match &self.inline {
            Some(job) => job.make(k),
            None => {
                let w = (k - self.start) % self.rx.len();
                self.rx[w].recv().unwrap_or(Err(DataError::Worker))
            }
        };
        Some(raw.map(|r| {
            let n = r.labels.len() as i64;
            let [c, h, w] = r.shape;
            Batch {
                images: Tensor::from_slice(&r.images).view([n, c, h, w]),
                labels: Tensor::from_slice(&r.labels).to_kind(Kind::Int64),
                index: k,
            }
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channels makes every blocked `send` fail, so the workers return.
        self.rx.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
