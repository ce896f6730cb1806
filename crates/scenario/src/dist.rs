//! Drawing numbers from the distributions of a scenario file ([`Dist`]): file sizes, repair
//! times, latencies. Every draw takes the caller's seeded generator, so a run stays a function
//! of its seed.

use rand::{Rng, RngExt as _};

use crate::spec::{Dist, DistKind, DistTable};

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

/// A distribution ready to draw from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Always this.
    Fixed(f64),
    /// Uniform in `[min, max]`.
    Uniform(f64, f64),
    /// `exp(N(mu, sigma))`, at most `max`.
    Lognormal {
        /// Log of the median.
        mu: f64,
        /// Spread.
        sigma: f64,
        /// Draws above are capped here.
        max: f64,
    },
    /// Exponential with this mean.
    Exponential(f64),
}

impl Sampler {
    /// The sampler of a distribution [`check`]ed when loaded.
    pub fn of(d: &Dist) -> Sampler {
        match d {
            Dist::Fixed(v) => Sampler::Fixed(*v),
            Dist::Table(t) => {
                let get = |v: Option<f64>| v.unwrap_or(0.0);
                match t.dist {
                    DistKind::Fixed => Sampler::Fixed(get(t.value)),
                    DistKind::Uniform => Sampler::Uniform(get(t.min), get(t.max)),
                    DistKind::Lognormal => {
                        let (median, p99) = (get(t.median), get(t.p99));
                        Sampler::Lognormal {
                            mu: median.ln(),
                            sigma: (p99 / median).ln() / Z99,
                            max: t.max.unwrap_or(f64::INFINITY),
                        }
                    }
                    DistKind::Exponential => Sampler::Exponential(get(t.mean)),
                }
            }
        }
    }

    /// One draw.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Sampler::Fixed(v) => v,
            Sampler::Uniform(a, b) => {
                if b > a {
                    rng.random_range(a..=b)
                } else {
                    a
                }
            }
            Sampler::Lognormal { mu, sigma, max } => (mu + sigma * normal(rng)).exp().min(max),
            Sampler::Exponential(mean) => exponential(rng, mean),
        }
    }

    /// The mean of the distribution.
    pub fn mean(&self) -> f64 {
        match *self {
            Sampler::Fixed(v) => v,
            Sampler::Uniform(a, b) => (a + b) / 2.0,
            // (The cap's effect on the mean is left out.)
            Sampler::Lognormal { mu, sigma, .. } => (mu + sigma * sigma / 2.0).exp(),
            Sampler::Exponential(mean) => mean,
        }
    }

    /// A value few draws exceed (the largest for bounded distributions, the 99.99th
    /// percentile otherwise): used to size limits.
    pub fn high(&self) -> f64 {
        match *self {
            Sampler::Fixed(v) => v,
            Sampler::Uniform(_, b) => b,
            Sampler::Lognormal { mu, sigma, max } => (mu + 3.719 * sigma).exp().min(max),
            Sampler::Exponential(mean) => mean * 9.21,
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An exponential draw with this mean.
pub fn exponential<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    -mean * u.ln()
}

/// What is wrong with a distribution whose values must lie in `[lo, hi]`, if anything.
pub fn check(d: &Dist, lo: f64, hi: f64) -> Result<(), String> {
    let in_range = |v: f64| v.is_finite() && v >= lo && v <= hi;
    let range = format!("in [{lo}, {hi}]");
    match d {
        Dist::Fixed(v) => {
            if in_range(*v) {
                Ok(())
            } else {
                Err(format!("must be {range}"))
            }
        }
        Dist::Table(t) => check_table(t, lo, hi, &range, in_range),
    }
}

fn check_table(
    t: &DistTable,
    lo: f64,
    hi: f64,
    range: &str,
    in_range: impl Fn(f64) -> bool,
) -> Result<(), String> {
    let given = [
        ("value", t.value),
        ("min", t.min),
        ("max", t.max),
        ("median", t.median),
        ("p99", t.p99),
        ("mean", t.mean),
    ];
    let wants: &[&str] = match t.dist {
        DistKind::Fixed => &["value"],
        DistKind::Uniform => &["min", "max"],
        DistKind::Lognormal => &["median", "p99", "max?"],
        DistKind::Exponential => &["mean"],
    };
    let name = format!("{:?}", t.dist).to_lowercase();
    let optional = |k: &str| wants.contains(&format!("{k}?").as_str());
    let needed: Vec<&str> = wants
        .iter()
        .copied()
        .filter(|w| !w.ends_with('?'))
        .collect();
    for (k, v) in given {
        match (wants.contains(&k) || optional(k), v) {
            (true, None) if !optional(k) => {
                return Err(format!("dist = \"{name}\" needs {}", needed.join(" and ")));
            }
            (false, Some(_)) => {
                return Err(format!(
                    "{k} does not go with dist = \"{name}\" (it takes {})",
                    wants.join(", ").replace('?', " (optional)")
                ));
            }
            (true, Some(v)) if !in_range(v) => return Err(format!("{k} must be {range}")),
            _ => {}
        }
    }
    match t.dist {
        DistKind::Uniform if t.max < t.min => Err("max must be at least min".into()),
        DistKind::Lognormal if !(t.p99 > t.median && t.median.is_some_and(|m| m > 0.0)) => {
            Err("p99 must be above median, and median above 0".into())
        }
        DistKind::Lognormal if t.max.is_some_and(|m| t.median.is_some_and(|md| m < md)) => {
            Err("max must be at least median".into())
        }
        DistKind::Lognormal if Sampler::of(&Dist::Table(t.clone())).high() > hi.max(lo) * 10.0 => {
            Err(format!(
                "p99 is so far above median that draws run far past {hi} (they are capped there): bring p99 closer"
            ))
        }
        DistKind::Exponential if t.mean.is_some_and(|m| m <= 0.0) => {
            Err("mean must be above 0".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    }

    #[test]
    fn lognormal_draws_have_the_median_and_p99_asked_for() {
        let s = Sampler::of(&Dist::Table(DistTable {
            dist: DistKind::Lognormal,
            value: None,
            min: None,
            max: None,
            median: Some(32_768.0),
            p99: Some(1_048_576.0),
            mean: None,
        }));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let v: Vec<f64> = (0..200_000).map(|_| s.sample(&mut rng)).collect();
        let (m, p99) = (quantile(v.clone(), 0.5), quantile(v.clone(), 0.99));
        assert!((m / 32_768.0 - 1.0).abs() < 0.02, "median {m}");
        assert!((p99 / 1_048_576.0 - 1.0).abs() < 0.05, "p99 {p99}");
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            (mean / s.mean() - 1.0).abs() < 0.03,
            "mean {mean} vs {}",
            s.mean()
        );
    }

    #[test]
    fn exponential_and_uniform_draws_have_their_means() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 200_000;
        let e: f64 = (0..n).map(|_| exponential(&mut rng, 40.0)).sum::<f64>() / n as f64;
        assert!((e / 40.0 - 1.0).abs() < 0.01, "exponential mean {e}");
        let u = Sampler::Uniform(10.0, 20.0);
        let v: Vec<f64> = (0..n).map(|_| u.sample(&mut rng)).collect();
        assert!(v.iter().all(|x| (10.0..=20.0).contains(x)));
        let m = v.iter().sum::<f64>() / n as f64;
        assert!((m - 15.0).abs() < 0.05, "uniform mean {m}");
    }

    #[test]
    fn bad_tables_are_refused_with_what_is_missing() {
        let t = |dist, median, p99| {
            Dist::Table(DistTable {
                dist,
                value: None,
                min: None,
                max: None,
                median,
                p99,
                mean: None,
            })
        };
        let e = check(&t(DistKind::Lognormal, Some(10.0), None), 0.0, 1e9).unwrap_err();
        assert!(e.contains("needs median and p99"), "{e}");
        let e = check(&t(DistKind::Lognormal, Some(10.0), Some(5.0)), 0.0, 1e9).unwrap_err();
        assert!(e.contains("above median"), "{e}");
        let e = check(&t(DistKind::Exponential, Some(10.0), None), 0.0, 1e9).unwrap_err();
        assert!(e.contains("does not go with"), "{e}");
        assert!(check(&Dist::Fixed(-1.0), 0.0, 10.0).is_err());
        assert!(check(&t(DistKind::Lognormal, Some(10.0), Some(50.0)), 0.0, 1e9).is_ok());
    }
}
