//! The testing ("chaos") mode: seeded, replayable randomness that breaks a
//! component's hidden assumptions about instance reuse and I/O timing.
//!
//! Every decision for the call numbered `n` is drawn from a generator seeded
//! with `(seed, n)` alone, so the same seed and the same serial sequence of
//! calls replay the same decisions exactly, however the async runtime
//! happens to interleave work. Decisions are plain values ([`Decision`]),
//! tested without I/O; the front end carries them out.

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng, TryRng};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The lowest re-instantiation probability: below it chaos is effectively
/// off, and components could again come to rely on reuse.
pub const MIN_PROBABILITY: f64 = 0.1;

/// The probability `--chaos` uses when none is given: high enough that a
/// short test run sees several re-instantiations.
pub const DEFAULT_PROBABILITY: f64 = 0.25;

/// Live instances chaos keeps, so "my globals persist" assumptions fail: a
/// call never knows which of them it lands on.
pub const INSTANCES: usize = 2;

/// Chaos settings, validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChaosConfig {
    /// Probability of retiring the chosen instance before a call.
    pub probability: f64,
    /// The seed every decision derives from.
    pub seed: u64,
    /// Keep honoring a `fresh` hint (or no hint) instead of reusing anyway.
    pub respect_hint: bool,
}

/// Chaos settings that make no sense.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ChaosError {
    #[error("chaos probability must be between 0 and 1, got {0}")]
    Probability(f64),
}

impl ChaosConfig {
    /// Validates `probability` (raised to [`MIN_PROBABILITY`], at most 1)
    /// and draws a random seed when none is given.
    pub fn new(
        probability: Option<f64>,
        seed: Option<u64>,
        respect_hint: bool,
    ) -> Result<Self, ChaosError> {
        let probability = probability.unwrap_or(DEFAULT_PROBABILITY);
        if !(0.0..=1.0).contains(&probability) {
            return Err(ChaosError::Probability(probability));
        }
        Ok(Self {
            probability: probability.max(MIN_PROBABILITY),
            seed: seed.unwrap_or_else(rand::random),
            respect_hint,
        })
    }
}

/// How often a perturbation point sleeps instead of only yielding. Yields
/// already reorder concurrent tasks at almost no CPU cost; the occasional
/// real sleep reorders them across timer ticks too. Sleeps are what chaos
/// costs under load (a connection waiting on a timer serves nothing), so
/// they stay rare enough to leave the testing mode on in a load test.
pub const SLEEP_CHANCE: f64 = 1.0 / 16.0;

/// The most yields one perturbation point makes.
const MAX_YIELDS: u32 = 4;

/// A moment where chaos lets other tasks run before going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// Give other tasks this many turns first (0: go straight on).
    Yield(u32),
    /// Wait this long.
    Sleep(Duration),
}

impl Pause {
    /// A random pause: mostly a few yields, with [`SLEEP_CHANCE`] a sleep of
    /// up to `max_sleep`.
    fn draw(rng: &mut impl Rng, max_sleep: Duration) -> Pause {
        if !max_sleep.is_zero() && rng.random_bool(SLEEP_CHANCE) {
            let max = u64::try_from(max_sleep.as_micros()).unwrap_or(u64::MAX);
            Pause::Sleep(Duration::from_micros(rng.random_range(1..=max.max(1))))
        } else {
            Pause::Yield(rng.random_range(0..=MAX_YIELDS))
        }
    }

    /// Carries the pause out.
    pub async fn wait(self) {
        match self {
            Pause::Yield(n) => {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
            }
            Pause::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
}

/// The longest admission delay: enough to let calls that arrived later
/// overtake this one.
pub const MAX_ADMIT_DELAY: Duration = Duration::from_millis(1);

/// What chaos does around one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Which of the [`INSTANCES`] slots serves the call.
    pub slot: usize,
    /// Retire that slot's instance first, so the call gets a new one.
    pub reinstantiate: bool,
    /// Which instance to retire when the slot has several busy ones
    /// (concurrent traffic), modulo their number.
    pub victim: u64,
    /// How this call's I/O is perturbed, if it is.
    pub io: Option<IoPerturbation>,
}

/// The I/O timing chaos imposes on one call.
///
/// Every pause costs throughput under load (the connection waits instead
/// of being served), so only a share of calls is perturbed: the same
/// probability P as re-instantiation, one knob for how hard chaos pushes.
/// `--chaos=1` perturbs every call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoPerturbation {
    /// Wait before the call is admitted, so concurrent calls arrive in a
    /// random order.
    pub admit: Pause,
    /// Seed for the re-chunking of this call's request body.
    pub request_seed: u64,
    /// Seed for the re-chunking of this call's response body.
    pub response_seed: u64,
}

/// The seeded source of every chaos decision.
#[derive(Debug)]
pub struct Chaos {
    config: ChaosConfig,
    next_call: AtomicU64,
}

impl Chaos {
    pub fn new(config: ChaosConfig) -> Self {
        Self {
            config,
            next_call: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &ChaosConfig {
        &self.config
    }

    /// The decision for the next call, in arrival order.
    pub fn next(&self) -> Decision {
        self.decide(self.next_call.fetch_add(1, Relaxed))
    }

    /// The decision for call number `call` (from 0); a pure function of the
    /// seed and `call`. Each perturbation draws from a stream of its own, so
    /// adding one (or changing how one draws) never changes another's replay.
    pub fn decide(&self, call: u64) -> Decision {
        let p = self.config.probability;
        let seed = self.config.seed;
        Decision {
            slot: stream(seed, call, Stream::Slot).random_range(0..INSTANCES),
            reinstantiate: stream(seed, call, Stream::Reinstantiate).random_bool(p),
            victim: stream(seed, call, Stream::Victim).random(),
            io: stream(seed, call, Stream::PerturbIo)
                .random_bool(p)
                .then(|| IoPerturbation {
                    admit: Pause::draw(&mut stream(seed, call, Stream::Admit), MAX_ADMIT_DELAY),
                    request_seed: stream(seed, call, Stream::RequestBody).random(),
                    response_seed: stream(seed, call, Stream::ResponseBody).random(),
                }),
        }
    }
}

/// The perturbations chaos draws for a call, each from its own stream. A
/// variant's position is its stream, so new ones go last: moving one would
/// change every seed's replay.
#[derive(Clone, Copy)]
enum Stream {
    Slot,
    Reinstantiate,
    Victim,
    /// Whether the call's I/O is perturbed at all.
    PerturbIo,
    Admit,
    RequestBody,
    ResponseBody,
}

/// The generator of one perturbation for one call, independent of every
/// other call's and every other perturbation's.
fn stream(seed: u64, call: u64, perturbation: Stream) -> SplitMix {
    let key = mix(call ^ mix(perturbation as u64 + 1));
    SplitMix(mix(seed) ^ key)
}

/// SplitMix64: statistically sound for choosing timings and slots, and a
/// few instructions to seed, where a cryptographic generator spends
/// hundreds on its first block. A call draws four streams (seven when its
/// I/O is perturbed), so that difference is the chaos mode's per-request
/// cost.
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

/// SplitMix64's finalizer: a bijective mix of all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl TryRng for SplitMix {
    type Error = Infallible;

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        Ok(mix(self.0))
    }

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next_u64() >> 32) as u32)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// How one body's bytes are delivered: re-chunked into random sizes with a
/// random [`Pause`] between chunks. Components that assume a body arrives in
/// one piece, or that a read returns everything, break.
#[derive(Debug)]
pub struct BodySchedule {
    rng: StdRng,
    /// Upper bound of one sleep; zero only yields.
    max_sleep: Duration,
}

impl BodySchedule {
    pub fn new(seed: u64, max_sleep: Duration) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            max_sleep,
        }
    }

    /// The size of the next chunk to deliver out of `available` bytes.
    pub fn chunk_len(&mut self, available: usize) -> usize {
        if available <= 1 {
            return available;
        }
        // Mostly small chunks, sometimes all that is left.
        match self.rng.random_range(0..4) {
            0 => available,
            _ => self.rng.random_range(1..=available.min(4096)),
        }
    }

    /// The pause before the next chunk.
    pub fn pause(&mut self) -> Pause {
        Pause::draw(&mut self.rng, self.max_sleep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos(probability: f64, seed: u64) -> Chaos {
        Chaos::new(ChaosConfig::new(Some(probability), Some(seed), false).unwrap())
    }

    #[test]
    fn the_same_seed_replays_the_same_decisions() {
        let a = chaos(0.3, 42);
        let b = chaos(0.3, 42);
        let first: Vec<Decision> = (0..200).map(|_| a.next()).collect();
        let second: Vec<Decision> = (0..200).map(|_| b.next()).collect();
        assert_eq!(first, second);
        let other: Vec<Decision> = (0..200).map(|i| chaos(0.3, 43).decide(i)).collect();
        assert_ne!(first, other);
    }

    #[test]
    fn decisions_depend_only_on_the_call_number() {
        let c = chaos(0.5, 7);
        let in_order: Vec<Decision> = (0..50).map(|i| c.decide(i)).collect();
        let reversed: Vec<Decision> = (0..50).rev().map(|i| c.decide(i)).collect();
        assert_eq!(in_order, reversed.into_iter().rev().collect::<Vec<_>>());
    }

    #[test]
    fn probability_has_a_floor() {
        assert_eq!(
            ChaosConfig::new(Some(0.0), Some(1), false)
                .unwrap()
                .probability,
            MIN_PROBABILITY
        );
        assert_eq!(
            ChaosConfig::new(Some(0.5), Some(1), false)
                .unwrap()
                .probability,
            0.5
        );
        assert!(ChaosConfig::new(Some(1.5), Some(1), false).is_err());
        assert_eq!(
            ChaosConfig::new(None, Some(1), false).unwrap().probability,
            DEFAULT_PROBABILITY
        );
    }

    #[test]
    fn reinstantiation_frequency_follows_the_probability() {
        let c = chaos(0.1, 99);
        let hits = (0..10_000).filter(|&i| c.decide(i).reinstantiate).count();
        assert!(
            (800..1200).contains(&hits),
            "{hits} re-instantiations in 10000 at P=0.1"
        );
        let slots: Vec<usize> = (0..1000).map(|i| c.decide(i).slot).collect();
        for slot in 0..INSTANCES {
            assert!(slots.iter().filter(|&&s| s == slot).count() > 400);
        }
    }

    #[test]
    fn a_share_p_of_calls_is_perturbed() {
        let c = chaos(0.25, 5);
        let perturbed: Vec<IoPerturbation> = (0..8000).filter_map(|i| c.decide(i).io).collect();
        assert!(
            (1800..2200).contains(&perturbed.len()),
            "{} of 8000 perturbed at P=0.25",
            perturbed.len()
        );
        let every = chaos(1.0, 5);
        assert!((0..100).all(|i| every.decide(i).io.is_some()));
    }

    #[test]
    fn admission_mostly_yields_and_sometimes_sleeps() {
        let c = chaos(1.0, 5);
        let admits: Vec<Pause> = (0..4000).map(|i| c.decide(i).io.unwrap().admit).collect();
        let sleeps = admits
            .iter()
            .filter(|p| matches!(p, Pause::Sleep(d) if *d <= MAX_ADMIT_DELAY && !d.is_zero()))
            .count();
        assert!((150..350).contains(&sleeps), "{sleeps} sleeps in 4000");
        let reordering_yields = admits
            .iter()
            .filter(|p| matches!(p, Pause::Yield(n) if *n > 0))
            .count();
        assert!(reordering_yields > 2500, "{reordering_yields}");
    }

    /// The decisions of a few seeds, pinned: a change to how chaos draws
    /// would silently change what every recorded seed replays.
    #[test]
    fn golden_decisions_of_a_few_seeds() {
        let placement = |seed: u64| -> String {
            let c = chaos(0.3, seed);
            (0..8)
                .map(|i| {
                    let d = c.decide(i);
                    format!("{}{}", d.slot, if d.reinstantiate { "r" } else { "-" })
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(placement(1), "1r 1r 0r 0- 0r 1- 1r 1r");
        assert_eq!(placement(1234), "0r 0r 1r 0- 0- 1r 0- 0r");
        assert_eq!(chaos(0.3, 5).decide(3).victim, 13308518329170764190);
    }

    /// The I/O decisions of a few seeds, pinned like the placements: which
    /// calls are perturbed, each one's admission pause, and the top 16 bits
    /// of its request and response body seeds.
    #[test]
    fn golden_io_decisions_of_a_few_seeds() {
        let io = |probability: f64, seed: u64| -> String {
            let c = chaos(probability, seed);
            (0..8)
                .map(|i| match c.decide(i).io {
                    None => "-".to_string(),
                    Some(io) => format!(
                        "{}:{:04x}:{:04x}",
                        match io.admit {
                            Pause::Yield(n) => format!("y{n}"),
                            Pause::Sleep(d) => format!("s{}", d.as_micros()),
                        },
                        io.request_seed >> 48,
                        io.response_seed >> 48,
                    ),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            io(0.3, 1),
            "- - - - y0:debf:105d y2:1272:b91b y4:5878:52ba -"
        );
        assert_eq!(
            io(0.3, 1234),
            "y1:0ce2:5648 - - y3:26ac:9350 - - y0:74d0:870b y1:1733:4717"
        );
        assert_eq!(
            io(1.0, 18),
            "y0:cef5:ec24 s4:c223:19f1 y2:f1e5:7c1a y0:f2d5:643e \
             y4:18b8:450c y1:7501:f463 y1:4e81:b556 y0:e364:6772"
        );
    }

    #[test]
    fn each_perturbation_draws_from_its_own_stream() {
        // Changing the probability changes which calls re-instantiate and
        // which are perturbed, but never which slot a call lands on, which
        // busy instance is the victim, or how a call perturbed either way
        // is perturbed.
        let low = chaos(0.1, 77);
        let high = chaos(0.9, 77);
        let mut both_perturbed = 0;
        for i in 0..100 {
            let (a, b) = (low.decide(i), high.decide(i));
            assert_eq!((a.slot, a.victim), (b.slot, b.victim), "call {i}");
            if let (Some(a), Some(b)) = (a.io, b.io) {
                assert_eq!(a, b, "call {i}");
                assert_ne!(a.request_seed, a.response_seed, "call {i}");
                both_perturbed += 1;
            }
        }
        assert!(both_perturbed > 0);
    }

    #[test]
    fn chunks_cover_the_body_exactly() {
        let mut split = 0;
        for seed in 0..20 {
            let mut schedule = BodySchedule::new(seed, Duration::ZERO);
            let mut left = 10_000;
            let mut chunks = 0;
            while left > 0 {
                let n = schedule.chunk_len(left);
                assert!(n >= 1 && n <= left);
                left -= n;
                chunks += 1;
            }
            split += usize::from(chunks > 1);
        }
        assert!(split >= 10, "only {split} of 20 bodies were split");
    }
}
