//! Backend selection algorithms (spec 02 §4) as pure functions over candidate loads.

pub use crate::config::ServerSelect as Algorithm;

/// How an algorithm chooses.
pub trait Pick {
    /// Index into `loads` (one entry per selectable server) of the chosen server.
    /// `counter` is the round-robin counter, also used to break `lb` ties fairly;
    /// `unit` is a uniform random number in `[0, 1)`.
    fn pick(self, loads: &[u64], counter: usize, unit: f64) -> Option<usize>;
}

impl Pick for Algorithm {
    fn pick(self, loads: &[u64], counter: usize, unit: f64) -> Option<usize> {
        if loads.is_empty() {
            return None;
        }
        let n = loads.len();
        Some(match self {
            Algorithm::RoundRobin => counter % n,
            Algorithm::Random => ((unit * n as f64) as usize).min(n - 1),
            Algorithm::LeastLoaded => {
                let min = loads.iter().copied().min().unwrap_or(0);
                let ties: Vec<usize> = (0..n).filter(|&i| loads[i] == min).collect();
                ties[counter % ties.len()]
            }
            Algorithm::WeightedRandom => {
                let w: Vec<f64> = loads.iter().map(|&l| 1.0 / l.max(1) as f64).collect();
                let total: f64 = w.iter().sum();
                let mut x = unit * total;
                let mut chosen = n - 1;
                for (i, wi) in w.iter().enumerate() {
                    if x < *wi {
                        chosen = i;
                        break;
                    }
                    x -= wi;
                }
                chosen
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_none() {
        for a in [
            Algorithm::RoundRobin,
            Algorithm::Random,
            Algorithm::LeastLoaded,
            Algorithm::WeightedRandom,
        ] {
            assert_eq!(a.pick(&[], 3, 0.5), None);
        }
    }

    #[test]
    fn round_robin_cycles() {
        let picks: Vec<_> = (0..4)
            .map(|c| Algorithm::RoundRobin.pick(&[0, 0], c, 0.0).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn least_loaded_picks_minimum_and_rotates_ties() {
        assert_eq!(Algorithm::LeastLoaded.pick(&[5, 2, 9], 0, 0.0), Some(1));
        assert_eq!(Algorithm::LeastLoaded.pick(&[1, 1, 9], 1, 0.0), Some(1));
        assert_eq!(Algorithm::LeastLoaded.pick(&[1, 1, 9], 2, 0.0), Some(0));
    }

    #[test]
    fn weighted_random_favours_light_servers() {
        // weights 1/1 and 1/3: the first takes 75% of [0,1).
        assert_eq!(Algorithm::WeightedRandom.pick(&[1, 3], 0, 0.74), Some(0));
        assert_eq!(Algorithm::WeightedRandom.pick(&[1, 3], 0, 0.76), Some(1));
        assert_eq!(Algorithm::Random.pick(&[0, 0, 0], 0, 0.999), Some(2));
    }

    #[test]
    fn names() {
        assert_eq!(Algorithm::parse("lb"), Some(Algorithm::LeastLoaded));
        assert_eq!(Algorithm::parse("module:fn"), None);
    }
}
