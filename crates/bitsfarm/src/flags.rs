//! Flags shared by the commands that run many simulations (`sweep`, `explore`).

/// `--first-seed`, `--jobs`, `--shard`, `--json`.
#[derive(Debug, Clone, clap::Args)]
pub struct Batch {
    /// Seed of the first run.
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "J")]
    pub jobs: Option<usize>,
    /// Run only shard K of M (1-based): every M-th run starting at the K-th.
    #[arg(long, value_name = "K/M", value_parser = shard)]
    pub shard: Option<(u64, u64)>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl Batch {
    /// Worker threads to use.
    pub fn threads(&self) -> usize {
        crate::parallel::threads(self.jobs)
    }
}

/// Parses `K/M` (1-based K).
fn shard(s: &str) -> Result<(u64, u64), String> {
    let (k, m) = s.split_once('/').ok_or("--shard is K/M, e.g. 2/8")?;
    let k: u64 = k.trim().parse().map_err(|_| "--shard K is a number")?;
    let m: u64 = m.trim().parse().map_err(|_| "--shard M is a number")?;
    if m >= 1 && (1..=m).contains(&k) {
        Ok((k, m))
    } else {
        Err(format!("--shard {k}/{m}: K must be 1 to M"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_k_of_m() {
        assert_eq!(shard("2/8"), Ok((2, 8)));
        assert_eq!(shard(" 1 / 1 "), Ok((1, 1)));
        for bad in ["0/3", "4/3", "x/3", "2", "2/0"] {
            assert!(shard(bad).is_err(), "{bad}");
        }
    }
}
